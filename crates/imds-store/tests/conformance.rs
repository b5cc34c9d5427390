//! The conformance suite on [`MemoryStore`]; needs `--features test-util`.

use std::sync::Arc;

use imds_store::memory::MemoryStore;

imds_store::conformance_tests!(async { Arc::new(MemoryStore::new()) });
