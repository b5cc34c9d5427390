//! Every committed corpus entry, run through its target as a normal test.

use imds_fuzz::{corpus, TARGETS};

#[test]
fn every_corpus_entry_passes_its_target() {
    for target in TARGETS {
        let entries = corpus(target.name);
        assert!(!entries.is_empty(), "fuzz/corpus/{} is empty", target.name);
        for (name, bytes) in entries {
            let outcome = std::panic::catch_unwind(|| (target.run)(&bytes));
            assert!(outcome.is_ok(), "fuzz/corpus/{}/{name} fails", target.name);
        }
    }
}
