//! Generates the tonic client and server for `proto/greeter.proto` with tonic-build's manual
//! builder: no `protoc` needed. The messages are hand-written in `src/greeter.rs`.

use tonic_build::manual::{Builder, Method, Service};

fn method(name: &str, route: &str, input: &str, output: &str) -> Method {
    Method::builder()
        .name(name)
        .route_name(route)
        .input_type(format!("crate::greeter::{input}"))
        .output_type(format!("crate::greeter::{output}"))
        .codec_path("tonic_prost::ProstCodec")
        .build()
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
    Builder::new().compile(&[greeter]);
}
