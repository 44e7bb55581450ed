//! Loading a project's resource files (`resources/*.toml`) and seed files
//! (`seeds/*.toml`) into the validated model, reporting every error at once
//! with file, line, column and a did-you-mean where one helps.
//!
//! Loading runs in three steps: each file is parsed with spans and checked on
//! its own (`parse`), then the files are checked against each other and
//! Kumo's built-in resources (`resolve`), then the [`Schema`] is returned
//! only if nothing was wrong. Seeds are checked against a loaded schema
//! (`seeds`).

mod parse;
mod policy_types;
mod resolve;
mod seeds;
mod system;
mod value;
mod walk;

use std::fmt;
use std::path::{Path, PathBuf};

use crate::diagnostic::{Diagnostic, Sources};
use crate::resource::{Schema, Value};

pub use value::{check_value, normalize_value};

/// The namespace of seed row ids: a row's id is
/// `Uuid::new_v5(&KUMO_SEED_NAMESPACE, b"<resource>/<key>")`.
pub const KUMO_SEED_NAMESPACE: uuid::Uuid =
    uuid::Uuid::from_u128(0x6b75_6d6f_7365_4564_8000_6b75_6d6f_0001);

/// All errors of a load, with the sources they point into.
pub struct Diagnostics {
    pub sources: Sources,
    pub items: Vec<Diagnostic>,
}

impl fmt::Display for Diagnostics {
    /// Every diagnostic in rustc's style, then a summary line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for d in &self.items {
            writeln!(f, "{}", d.render(&self.sources))?;
        }
        let n = self.items.len();
        write!(
            f,
            "error: could not load resources: {n} error{}",
            if n == 1 { "" } else { "s" }
        )
    }
}

/// Debug shows the rendered errors: that is what a failing `unwrap()` in a
/// test or a `main` returning `Result` should print.
impl fmt::Debug for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl std::error::Error for Diagnostics {}

/// One row from a seed file, checked and ready to insert.
#[derive(Debug, Clone, PartialEq)]
pub struct SeedRow {
    pub resource: String,
    pub key: String,
    /// `Uuid::new_v5(&KUMO_SEED_NAMESPACE, "<resource>/<key>")`.
    pub id: uuid::Uuid,
    /// Only the fields the seed file gives (the database applies defaults),
    /// by column name: attributes as they are, belongs_to as `<name>_id`
    /// holding the referenced row's id.
    pub values: Vec<(String, Value)>,
}

/// Loads resource files. `files` are `(display path, text)` in any order;
/// they are sorted by path so the schema and the errors are deterministic.
/// With `include_system`, Kumo's built-in resources (`user`, `session`…)
/// come first, extended by a project file that declares `name = "user"`.
///
/// File ids in the returned [`Schema`] index, in order: the built-in files
/// (when included), then `files` sorted by path.
pub fn load_schema(
    files: Vec<(PathBuf, String)>,
    include_system: bool,
) -> Result<Schema, Diagnostics> {
    load_schema_beside(files, &[], include_system)
}

/// [`load_schema`], knowing the file names (stems) of resource files that
/// could not be read: a reference to one of those names is probably to the
/// resource in it, so it is not also reported as unknown.
fn load_schema_beside(
    mut files: Vec<(PathBuf, String)>,
    unreadable: &[String],
    include_system: bool,
) -> Result<Schema, Diagnostics> {
    files.sort_by(|a, b| a.0.cmp(&b.0));
    let mut sources = Sources::default();
    let mut ids = Vec::new();
    if include_system {
        for (name, text) in system::FILES {
            let path = PathBuf::from(format!("<kumo>/system/{name}.toml"));
            ids.push((sources.add(path, (*text).to_owned()), true));
        }
    }
    for (path, text) in files {
        ids.push((sources.add(path, text), false));
    }
    let mut diags = Vec::new();
    let parsed = ids
        .into_iter()
        .map(|(id, system)| parse::parse_file(id, &sources.get(id).text, system, &mut diags))
        .collect();
    let schema = resolve::build(parsed, unreadable, include_system, &sources, &mut diags);
    finish(sources, diags, schema)
}

/// Reads every `*.toml` directly in `dir` and loads them; paths are shown as
/// `shown_as.join(file name)`. A missing directory means no resources.
pub fn load_schema_dir(
    dir: &Path,
    shown_as: &Path,
    include_system: bool,
) -> Result<Schema, Diagnostics> {
    let (files, unreadable) = read_dir(dir, shown_as)?;
    let stems: Vec<String> = unreadable
        .iter()
        .filter_map(|u| Some(u.shown.file_stem()?.to_str()?.to_owned()))
        .collect();
    with_unreadable(
        load_schema_beside(files, &stems, include_system),
        unreadable,
    )
}

/// Checks seed files against a schema and returns their rows, each after the
/// rows it refers to.
pub fn load_seeds(
    schema: &Schema,
    files: Vec<(PathBuf, String)>,
) -> Result<Vec<SeedRow>, Diagnostics> {
    seeds::load(schema, files)
}

/// Reads every `*.toml` directly in `dir` as seed files. A missing directory
/// means no seeds.
pub fn load_seeds_dir(
    schema: &Schema,
    dir: &Path,
    shown_as: &Path,
) -> Result<Vec<SeedRow>, Diagnostics> {
    let (files, unreadable) = read_dir(dir, shown_as)?;
    with_unreadable(load_seeds(schema, files), unreadable)
}

/// A file read for loading: its shown path and its text.
type SourceText = (PathBuf, String);

/// A file in the directory that could not be read: its shown path and why.
struct Unreadable {
    shown: PathBuf,
    message: String,
}

/// Adds the files that could not be read to a load of the others, so one
/// unreadable file does not hide the other files' errors.
fn with_unreadable<T>(
    loaded: Result<T, Diagnostics>,
    unreadable: Vec<Unreadable>,
) -> Result<T, Diagnostics> {
    if unreadable.is_empty() {
        return loaded;
    }
    let mut diagnostics = match loaded {
        Ok(_) => Diagnostics {
            sources: Sources::default(),
            items: Vec::new(),
        },
        Err(diagnostics) => diagnostics,
    };
    for file in unreadable {
        let id = diagnostics.sources.add(file.shown, String::new());
        diagnostics
            .items
            .push(Diagnostic::new(id, 0..0, file.message));
    }
    Err(diagnostics)
}

/// The `*.toml` files directly in `dir`, sorted, as `(shown path, text)`,
/// and those that could not be read (not UTF-8, say), to be reported with
/// the others' errors. An unreadable directory is an error on its own: a
/// diagnostic with an empty file, which renders as just the message and the
/// path.
fn read_dir(
    dir: &Path,
    shown_as: &Path,
) -> Result<(Vec<SourceText>, Vec<Unreadable>), Diagnostics> {
    let mut sources = Sources::default();
    let mut diags = Vec::new();
    let mut io_error = |sources: &mut Sources, shown: PathBuf, what: &str, e: std::io::Error| {
        let message = format!("could not {what} {}: {e}", shown.display());
        let id = sources.add(shown, String::new());
        diags.push(Diagnostic::new(id, 0..0, message));
    };
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((Vec::new(), Vec::new())),
        Err(e) => {
            io_error(&mut sources, shown_as.to_path_buf(), "read directory", e);
            return Err(Diagnostics {
                sources,
                items: diags,
            });
        }
    };
    let mut names = Vec::new();
    for entry in entries {
        match entry {
            Ok(entry) => {
                let name = entry.file_name();
                let is_toml = Path::new(&name).extension().is_some_and(|e| e == "toml");
                // Follow symlinks: a linked resource file is still a file.
                let is_file = std::fs::metadata(entry.path()).is_ok_and(|m| m.is_file());
                if is_toml && is_file {
                    names.push(name);
                }
            }
            Err(e) => io_error(&mut sources, shown_as.to_path_buf(), "read directory", e),
        }
    }
    names.sort();
    let mut files = Vec::new();
    let mut unreadable = Vec::new();
    for name in names {
        let shown = shown_as.join(&name);
        match std::fs::read_to_string(dir.join(&name)) {
            Ok(text) => files.push((shown, text)),
            Err(e) => {
                let message = if e.kind() == std::io::ErrorKind::InvalidData {
                    format!("{} is not UTF-8 text: save it as UTF-8", shown.display())
                } else {
                    format!("could not read {}: {e}", shown.display())
                };
                unreadable.push(Unreadable { shown, message });
            }
        }
    }
    if diags.is_empty() {
        Ok((files, unreadable))
    } else {
        Err(Diagnostics {
            sources,
            items: diags,
        })
    }
}

/// Returns `value` when there were no errors, otherwise every error sorted
/// by file and position (the order a reader scans the files in).
fn finish<T>(sources: Sources, mut diags: Vec<Diagnostic>, value: T) -> Result<T, Diagnostics> {
    if diags.is_empty() {
        return Ok(value);
    }
    diags.sort_by_key(|d| (d.file, d.span.start));
    diags.dedup();
    Err(Diagnostics {
        sources,
        items: diags,
    })
}
