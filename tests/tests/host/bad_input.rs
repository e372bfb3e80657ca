//! Components that are not what they claim: each rejected with its own error.

use hyyve_runtime::LoadError;
use hyyve_tests::{guest_bytes, runtime};

#[tokio::test]
async fn a_file_that_is_not_wasm() {
    let err = runtime()
        .load_node_plugin(b"#!/bin/sh\necho hi\n")
        .await
        .err()
        .unwrap();
    assert!(matches!(err, LoadError::NotWasm), "{err}");
    let err = runtime().load_node_plugin(b"").await.err().unwrap();
    assert!(matches!(err, LoadError::NotWasm), "{err}");
}

#[tokio::test]
async fn a_core_module_instead_of_a_component() {
    let module = wat::parse_str(r#"(module (func (export "run")))"#).unwrap();
    let err = runtime().load_node_plugin(&module).await.err().unwrap();
    assert!(matches!(err, LoadError::CoreModule), "{err}");
}

#[tokio::test]
async fn a_truncated_component() {
    let bytes = guest_bytes("hyyve-plugin-fibo");
    let err = runtime()
        .load_node_plugin(&bytes[..bytes.len() / 2])
        .await
        .err()
        .unwrap();
    assert!(matches!(err, LoadError::InvalidComponent(_)), "{err}");
}

#[tokio::test]
async fn a_component_of_another_world() {
    let err = runtime()
        .load_node_plugin(&guest_bytes("guest-command"))
        .await
        .err()
        .unwrap();
    match err {
        LoadError::WrongWorld { expected, found } => {
            assert_eq!(expected, "node-plugin");
            assert!(found.contains("wasi:cli/run"), "{found}");
        }
        other => panic!("expected wrong world, got {other}"),
    }
}

#[tokio::test]
async fn a_component_importing_what_the_host_does_not_offer() {
    let component = wat::parse_str(
        r#"(component
             (import "acme:evil/backdoor" (instance (export "open" (func))))
             (instance $empty)
             (export "hyyve:plugin/node@0.1.0" (instance $empty)))"#,
    )
    .unwrap();
    let err = runtime().load_node_plugin(&component).await.err().unwrap();
    assert!(
        matches!(err, LoadError::UnsatisfiedImport(ref m) if m.contains("acme:evil/backdoor")),
        "{err}"
    );
}

#[tokio::test]
async fn a_component_missing_the_node_functions() {
    let component = wat::parse_str(
        r#"(component (instance $empty) (export "hyyve:plugin/node@0.1.0" (instance $empty)))"#,
    )
    .unwrap();
    let err = runtime().load_node_plugin(&component).await.err().unwrap();
    assert!(matches!(err, LoadError::WrongWorld { .. }), "{err}");
}

#[test]
fn an_unparsable_extra_root_certificate_stops_the_runtime_from_starting() {
    let config = hyyve_runtime::RuntimeConfig {
        extra_root_certificates: vec![b"not a certificate".to_vec()],
        ..Default::default()
    };
    match hyyve_runtime::Runtime::new(config) {
        Err(hyyve_runtime::RuntimeError::Tls(message)) => {
            assert!(message.contains("extra root certificate 0"), "{message}")
        }
        Err(other) => panic!("unexpected error: {other}"),
        Ok(_) => panic!("a junk root certificate was accepted"),
    }
}
