//! Service templates, embedded in the binary from templates/<name>/. Files ending in `.jinja`
//! are rendered with minijinja (and lose the suffix); every other file is copied as it is.

use std::path::{Path, PathBuf};

use include_dir::{Dir, DirEntry, include_dir};
use serde::{Deserialize, Serialize};

static TEMPLATES: Dir<'static> = include_dir!("$CARGO_MANIFEST_DIR/../templates");

/// The template `faas service create` uses when none is named.
pub const DEFAULT_TEMPLATE: &str = "python-function";

#[derive(Debug, Clone, Serialize)]
pub struct Template {
    pub name: String,
    pub description: String,
    pub language: String,
    #[serde(skip)]
    pub default_description: String,
    #[serde(skip)]
    dir: &'static Dir<'static>,
}

#[derive(Deserialize)]
struct TemplateMeta {
    description: String,
    default_description: String,
    language: String,
}

/// Every embedded template, by name.
pub fn all() -> Vec<Template> {
    let mut out: Vec<Template> = TEMPLATES
        .dirs()
        .filter_map(|dir| {
            let name = dir.path().file_name()?.to_str()?.to_owned();
            let meta: TemplateMeta = toml::from_str(
                dir.get_file(dir.path().join("template.toml"))?
                    .contents_utf8()?,
            )
            .ok()?;
            Some(Template {
                name,
                description: meta.description,
                language: meta.language,
                default_description: meta.default_description,
                dir,
            })
        })
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

pub fn find(name: &str) -> Option<Template> {
    all().into_iter().find(|t| t.name == name)
}

/// The values a template sees.
#[derive(Debug, Serialize)]
pub struct Vars<'a> {
    pub name: &'a str,
    pub owner: &'a str,
    pub kind: &'a str,
    pub description: &'a str,
    pub schema_url: &'a str,
}

fn skipped(path: &Path) -> bool {
    path.components().any(|c| c.as_os_str() == "__pycache__")
        || path.extension().is_some_and(|e| e == "pyc")
        || path.file_name().is_some_and(|n| n == "template.toml")
}

/// Writes the template into `dest` (which must exist), returning the files written.
pub fn render(template: &Template, vars: &Vars<'_>, dest: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut env = minijinja::Environment::new();
    env.set_keep_trailing_newline(true);
    env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
    env.add_filter("toml", |value: String| {
        toml_edit::Value::from(value).to_string().trim().to_owned()
    });

    let mut written = Vec::new();
    let mut stack = vec![template.dir];
    while let Some(dir) = stack.pop() {
        for entry in dir.entries() {
            match entry {
                DirEntry::Dir(d) => stack.push(d),
                DirEntry::File(f) => {
                    let relative = f.path().strip_prefix(template.dir.path())?;
                    if skipped(relative) {
                        continue;
                    }
                    let (target, contents) = match relative
                        .to_str()
                        .and_then(|p| p.strip_suffix(".jinja"))
                    {
                        Some(stripped) => {
                            let source = f.contents_utf8().ok_or_else(|| {
                                anyhow::anyhow!("template file {} is not UTF-8", relative.display())
                            })?;
                            let rendered = env.render_str(source, vars).map_err(|e| {
                                anyhow::anyhow!("rendering {}: {e}", relative.display())
                            })?;
                            (PathBuf::from(stripped), rendered.into_bytes())
                        }
                        None => (relative.to_path_buf(), f.contents().to_vec()),
                    };
                    let path = dest.join(&target);
                    if let Some(parent) = path.parent() {
                        std::fs::create_dir_all(parent)?;
                    }
                    std::fs::write(&path, contents)?;
                    written.push(target);
                }
            }
        }
    }
    written.sort();
    Ok(written)
}
