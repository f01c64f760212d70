//! Dataset folders a test changes: a copy of the bundled `datasets/` (each dataset's definition,
//! models, checks and exports) in a folder of the test's own, to point `LANDFALL_DATASETS_DIR`
//! (or `landfall --datasets-dir`) at after editing a file of it; and the folder copy it uses,
//! which tests copying other folders (`k8s/`) use too.

use std::path::{Path, PathBuf};

use crate::TestEnv;

/// A copy of the bundled datasets in a folder of this test named after `name`.
pub fn bundled_copy(env: &TestEnv, name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("landfall-{name}-{}", env.suffix));
    let _ = std::fs::remove_dir_all(&dir);
    copy_dir(&TestEnv::repo_dir().join("datasets"), &dir);
    dir
}

/// Copies the folder `from` to `to`, sub-folders included.
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to)
        .unwrap_or_else(|error| panic!("creating {}: {error}", to.display()));
    let entries = std::fs::read_dir(from)
        .unwrap_or_else(|error| panic!("reading {}: {error}", from.display()));
    for entry in entries {
        let path = entry.expect("a directory entry").path();
        let target = to.join(path.file_name().expect("a file name"));
        if path.is_dir() {
            copy_dir(&path, &target);
        } else {
            std::fs::copy(&path, &target)
                .unwrap_or_else(|error| panic!("copying {}: {error}", path.display()));
        }
    }
}
