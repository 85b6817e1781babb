//! Generates the tonic client and server for `proto/greeter.proto` with tonic-build's manual
//! builder: no `protoc` needed. The messages are hand-written in `src/greeter.rs`.

use tonic_build::manual::{Builder, Method, MethodBuilder, Service};

/// A method of the `greeter` package's services; which side streams is up to the caller.
fn method_builder(name: &str, route: &str, input: &str, output: &str) -> MethodBuilder {
    Method::builder()
        .name(name)
        .route_name(route)
        .input_type(format!("crate::greeter::{input}"))
        .output_type(format!("crate::greeter::{output}"))
        .codec_path("tonic_prost::ProstCodec")
}

/// A unary method.
fn method(name: &str, route: &str, input: &str, output: &str) -> Method {
    method_builder(name, route, input, output).build()
}

fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    let greeter = Service::builder()
        .name("Greeter")
        .package("greeter")
        .method(method(
            "say_hello",
            "SayHello",
            "HelloRequest",
            "HelloReply",
        ))
        .method(method(
            "set_greeting",
            "SetGreeting",
            "SetGreetingRequest",
            "SetGreetingReply",
        ))
        .build();
    // The three streaming shapes, for the end-to-end tests of `#[require_cert]` on them.
    let streams = Service::builder()
        .name("Streams")
        .package("greeter")
        .method(
            method_builder("repeat", "Repeat", "HelloRequest", "HelloReply")
                .server_streaming()
                .build(),
        )
        .method(
            method_builder("collect", "Collect", "HelloRequest", "HelloReply")
                .client_streaming()
                .build(),
        )
        .method(
            method_builder("chat", "Chat", "HelloRequest", "HelloReply")
                .client_streaming()
                .server_streaming()
                .build(),
        )
        .build();
    Builder::new().compile(&[greeter, streams]);
}
