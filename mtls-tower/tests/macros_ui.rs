//! Compile-time behaviour of `#[require_cert]`: shapes that must compile, and mistakes that must
//! be errors pointing at the offending token (checked-in `.stderr`, stable toolchain).
//! Regenerate the expected output with `TRYBUILD=overwrite cargo test -p mtls-tower --test macros_ui`.

#[test]
fn require_cert_ui() {
    let t = trybuild::TestCases::new();
    t.pass("tests/ui/pass/*.rs");
    t.compile_fail("tests/ui/fail/*.rs");
}
