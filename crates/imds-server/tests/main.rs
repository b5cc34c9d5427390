//! imds-server's integration tests, one binary: each module below is one area of the daemon
//! tested over real sockets. One binary links the daemon once instead of once per file.
//!
//! Every `tests/*.rs` file must be a module here (`autotests = false` in Cargo.toml, so cargo
//! would not build a file left out); [`every_test_file_is_a_module`] checks it.

mod admin;
mod admin_edges;
mod azure;
mod bound;
mod clouds;
mod compat;
mod creds;
mod events;
mod fidelity;
mod gce;
mod guest;
mod guest_connections;
mod guest_state;
mod imdsv2;
mod import;
mod mmds;
mod openstack;
mod refusals;
mod renderings;
mod seeds;
mod signing;
mod timestamps;
mod tokens;
mod wireserver;

/// A test file that is not declared above would silently never run.
#[test]
fn every_test_file_is_a_module() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests");
    let declared = include_str!("main.rs");
    for entry in std::fs::read_dir(&dir).expect("tests/ is readable") {
        let name = entry.expect("a directory entry").file_name().into_string().expect("a UTF-8 file name");
        if let Some(module) = name.strip_suffix(".rs").filter(|module| *module != "main") {
            assert!(declared.contains(&format!("\nmod {module};\n")), "tests/{name} is not a module of tests/main.rs");
        }
    }
}
