//! The `BlobStore` conformance suite through `Prefixed`, the view each school's database
//! export gets of the data store: every call, `head_sum` included, passes through.

use std::sync::Arc;

use a2a_core::BlobStore;
use a2a_steps::Prefixed;

/// A `Prefixed` view of a folder store that owns its temporary folder.
async fn prefixed() -> Option<Arc<dyn BlobStore>> {
    // Under cargo's folder for tests' files, kept after the test: the suite takes the
    // store by itself, with nothing to own the folder beside it.
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .expect("a temporary folder")
        .keep();
    let inner = a2a_local::FsBlob::new(dir.join("blobs")).expect("make the store");
    Some(Arc::new(Prefixed::new(
        Arc::new(inner),
        "stage/08012345/dbmove/",
    )))
}

a2a_testkit::conformance!(blob, prefixed());
