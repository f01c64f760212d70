//! Embeds every `sql/migrations/*.sql` file in the binary, in file-name order, so a service
//! image needs no SQL files beside it and a migration cannot be half-deployed.

use std::fmt::Write as _;
use std::path::Path;

fn main() {
    // The manifest folder as cargo gives it to this run (not `env!`, fixed when the script was
    // compiled): a build folder shared by clones in other places reuses the compiled script.
    let manifest_dir = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    let dir = Path::new(&manifest_dir).join("../../sql/migrations");
    println!("cargo:rerun-if-changed={}", dir.display());
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|error| panic!("reading {}: {error}", dir.display()))
        .map(|entry| entry.expect("readable directory entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "sql"))
        .collect();
    files.sort();
    let mut code = String::from(
        "/// (name, SQL) of every migration, in order.\npub static MIGRATIONS: &[(&str, &str)] = &[\n",
    );
    for path in files {
        println!("cargo:rerun-if-changed={}", path.display());
        let name = path.file_stem().unwrap().to_string_lossy().into_owned();
        let absolute = path.canonicalize().expect("migration path resolves");
        writeln!(
            code,
            "    ({name:?}, include_str!({:?})),",
            absolute.display().to_string()
        )
        .unwrap();
    }
    code.push_str("];\n");
    let out = Path::new(&std::env::var("OUT_DIR").unwrap()).join("migrations.rs");
    std::fs::write(out, code).expect("writing migrations.rs");
}
