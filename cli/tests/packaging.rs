//! Offline checks of what ships: the winget manifests, the Homebrew formula and the
//! release archives.
//!
//! The tools that really judge these files cannot run here: `winget validate` needs
//! Windows, and `brew audit`/`brew test` need a Homebrew that downloads itself. So this
//! suite renders the templates with `packaging/render` from a made-up checksum file, then
//! checks what those tools and the winget-pkgs pipeline would: each winget manifest
//! against the vendored 1.12.0 JSON schemas, plus the rules a schema cannot express (the
//! folder matches the identifier and version, the three files agree on who they describe,
//! hashes are upper-case SHA-256, URLs point at our own release tag, every nested file is
//! a binary this package builds and is in the zip). For the formula, a structural check
//! stands in for `brew audit`, `ruby -c` for Ruby's parser, and the commands of its
//! `test do` block run against this build. `packaging/build-release` packs the debug
//! binaries, which proves the archive layout and that its checksum files feed the renderer.
//!
//! What it gives up: no real Windows install and no real `brew install` (both are release
//! steps, see `docs/releasing.md`), and the formula check reads Ruby as text, so it
//! catches missing pieces, not Ruby semantics.
//!
//! Needs `python3` (3.11+, standard library only), `ruby`, `bash`, `tar` and `sha256sum`;
//! `.ci/run` installs what a fresh machine lacks.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

const PACKAGE_IDENTIFIER: &str = "Jit.Jit";
const RELEASE_DATE: &str = "2026-07-15";
/// winget architecture and the Rust target its zip is built for.
const WINDOWS_TARGETS: [(&str, &str); 2] = [
    ("x64", "x86_64-pc-windows-msvc"),
    ("arm64", "aarch64-pc-windows-msvc"),
];
const UNIX_TARGETS: [&str; 4] = [
    "x86_64-apple-darwin",
    "aarch64-apple-darwin",
    "x86_64-unknown-linux-gnu",
    "aarch64-unknown-linux-gnu",
];

// ---------------------------------------------------------------------------------------
// Paths, project facts and the tools the checks drive.
// ---------------------------------------------------------------------------------------

fn repository_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("cli/ lives inside the repository")
        .to_path_buf()
}

fn packaging_dir() -> PathBuf {
    repository_root().join("packaging")
}

fn version() -> &'static str {
    env!("CARGO_PKG_VERSION")
}

fn repository_url() -> &'static str {
    env!("CARGO_PKG_REPOSITORY").trim_end_matches('/')
}

/// The `[[bin]]` names of the `jit` package: what the packages may install.
fn binary_names() -> BTreeSet<String> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml");
    let text = fs::read_to_string(&path).expect("cli/Cargo.toml is readable");
    let manifest: toml::Table = toml::from_str(&text).expect("cli/Cargo.toml is TOML");
    let names: BTreeSet<String> = manifest
        .get("bin")
        .and_then(|bins| bins.as_array())
        .into_iter()
        .flatten()
        .filter_map(|bin| bin.get("name")?.as_str().map(str::to_owned))
        .collect();
    assert!(
        names.contains("jit") && names.contains("jit-agent"),
        "cli/Cargo.toml should declare the jit and jit-agent binaries, found {names:?}"
    );
    names
}

fn windows_asset(target: &str) -> String {
    format!("jit-{target}.zip")
}

fn unix_asset(target: &str) -> String {
    format!("jit-{target}.tar.gz")
}

fn release_assets() -> Vec<String> {
    WINDOWS_TARGETS
        .iter()
        .map(|(_, target)| windows_asset(target))
        .chain(UNIX_TARGETS.iter().map(|target| unix_asset(target)))
        .collect()
}

/// A distinct, recognisable, lower-case digest per archive, so a swapped or upper-cased
/// hash shows up.
fn fake_digest(asset: &str) -> String {
    let index = release_assets()
        .iter()
        .position(|known| known == asset)
        .expect("a release asset") as u64;
    format!("{:064x}", 0x0123_4567_89ab_cdef_u64.wrapping_mul(index + 3))
}

/// Writes a checksum file in both spellings `sha256sum` produces (`name` and `*dir/name`),
/// leaving out the archives in `skip` (their real checksum file is passed separately).
fn write_fake_checksums(dir: &Path, skip: &[String]) -> PathBuf {
    let mut text = String::from("# made up by cli/tests/packaging.rs\n\n");
    for (index, asset) in release_assets().iter().enumerate() {
        if skip.contains(asset) {
            continue;
        }
        let name = if index % 2 == 0 {
            format!(" {asset}")
        } else {
            format!("*dist/{asset}")
        };
        text.push_str(&format!("{} {name}\n", fake_digest(asset)));
    }
    let path = dir.join("fake.sha256");
    fs::write(&path, text).expect("write the fake checksum file");
    path
}

/// Runs a tool, turning "not installed" into a message that names the package.
fn run(command: &mut Command, package: &str) -> Output {
    match command.output() {
        Ok(output) => output,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => panic!(
            "{:?} is not installed; install it (apt-get install {package}) or run .ci/run",
            command.get_program()
        ),
        Err(error) => panic!("could not run {command:?}: {error}"),
    }
}

fn assert_success(output: &Output, what: &str) {
    assert!(
        output.status.success(),
        "{what} failed with {}\nstdout:\n{}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// `python3 packaging/render ARGS`.
fn render(args: &[&str]) -> Output {
    run(
        Command::new("python3")
            .arg(packaging_dir().join("render"))
            .args(args),
        "python3",
    )
}

fn render_winget(checksums: &[&Path], output_root: &Path) -> PathBuf {
    let mut args = vec![
        "winget".to_owned(),
        "--version".to_owned(),
        version().to_owned(),
        "--release-date".to_owned(),
        RELEASE_DATE.to_owned(),
        "--output-root".to_owned(),
        output_root.display().to_string(),
    ];
    for checksum in checksums {
        args.extend(["--checksums".to_owned(), checksum.display().to_string()]);
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    assert_success(&render(&args), "packaging/render winget");
    winget_manifest_dir(output_root, version())
}

fn render_homebrew(checksums: &[&Path], output: &Path) {
    let mut args = vec![
        "homebrew".to_owned(),
        "--output".to_owned(),
        output.display().to_string(),
    ];
    for checksum in checksums {
        args.extend(["--checksums".to_owned(), checksum.display().to_string()]);
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    assert_success(&render(&args), "packaging/render homebrew");
}

/// `manifests/j/Jit/Jit/<version>`, as winget-pkgs lays packages out.
fn winget_manifest_dir(root: &Path, version: &str) -> PathBuf {
    let first_letter = PACKAGE_IDENTIFIER[..1].to_lowercase();
    let mut dir = root.join(first_letter);
    for segment in PACKAGE_IDENTIFIER.split('.') {
        dir.push(segment);
    }
    dir.join(version)
}

fn temp_dir() -> tempfile::TempDir {
    tempfile::tempdir().expect("create a temporary directory")
}

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_else(|error| panic!("read {}: {error}", path.display()))
}

fn assert_no_problems(problems: &[String], what: &str) {
    assert!(
        problems.is_empty(),
        "{what} has problems:\n  {}",
        problems.join("\n  ")
    );
}

fn assert_problem(problems: &[String], expected: &str, case: &str) {
    assert!(
        problems.iter().any(|problem| problem.contains(expected)),
        "{case}: expected a problem mentioning {expected:?}, got {problems:#?}"
    );
}

// ---------------------------------------------------------------------------------------
// The winget validator: the JSON schemas, then the rules the schemas cannot express.
// ---------------------------------------------------------------------------------------

/// The vendored 1.12.0 schemas, compiled once per check.
struct WingetSchemas {
    validators: Vec<(&'static str, jsonschema::Validator)>,
}

impl WingetSchemas {
    fn load() -> Self {
        let dir = packaging_dir().join("winget/schema/1.12.0");
        let validators = [
            ("version", "manifest.version.1.12.0.json"),
            ("installer", "manifest.installer.1.12.0.json"),
            ("defaultLocale", "manifest.defaultLocale.1.12.0.json"),
            ("locale", "manifest.locale.1.12.0.json"),
        ]
        .into_iter()
        .map(|(manifest_type, file)| {
            let path = dir.join(file);
            let schema: Value =
                serde_json::from_str(&read(&path)).expect("the vendored schema is JSON");
            let validator = jsonschema::draft7::new(&schema)
                .unwrap_or_else(|error| panic!("{} does not compile: {error}", path.display()));
            (manifest_type, validator)
        })
        .collect();
        Self { validators }
    }

    fn for_type(&self, manifest_type: &str) -> Option<&jsonschema::Validator> {
        self.validators
            .iter()
            .find(|(known, _)| *known == manifest_type)
            .map(|(_, validator)| validator)
    }
}

fn text<'a>(value: &'a Value, key: &str) -> Option<&'a str> {
    value.get(key).and_then(Value::as_str)
}

fn is_upper_sha256(digest: &str) -> bool {
    digest.len() == 64
        && digest
            .bytes()
            .all(|byte| byte.is_ascii_digit() || (b'A'..=b'F').contains(&byte))
}

/// Everything wrong with the manifests in `dir`; empty when winget-pkgs would accept them
/// as far as can be told offline.
fn winget_problems(dir: &Path, schemas: &WingetSchemas) -> Vec<String> {
    let mut problems = Vec::new();
    let mut manifests: Vec<(String, Value)> = Vec::new();
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(error) => return vec![format!("cannot list {}: {error}", dir.display())],
    };
    for entry in entries.flatten() {
        let file_name = entry.file_name().to_string_lossy().into_owned();
        if !file_name.ends_with(".yaml") {
            problems.push(format!("{file_name}: not a .yaml manifest"));
            continue;
        }
        // serde_yaml_ng leaves `2026-07-15` a string, as the schema wants (PyYAML would
        // turn it into a date).
        match serde_yaml_ng::from_str::<Value>(&read(&entry.path())) {
            Ok(value) => manifests.push((file_name, value)),
            Err(error) => problems.push(format!("{file_name}: not YAML: {error}")),
        }
    }
    manifests.sort_by(|left, right| left.0.cmp(&right.0));

    for (file_name, manifest) in &manifests {
        let manifest_type = text(manifest, "ManifestType").unwrap_or("");
        match schemas.for_type(manifest_type) {
            Some(validator) => {
                for error in validator.iter_errors(manifest) {
                    problems.push(format!(
                        "{file_name}: schema: {error} (at '{}')",
                        error.instance_path()
                    ));
                }
            }
            None => problems.push(format!(
                "{file_name}: unknown ManifestType {manifest_type:?}"
            )),
        }
    }

    let of_type = |wanted: &str| -> Vec<&(String, Value)> {
        manifests
            .iter()
            .filter(|(_, manifest)| text(manifest, "ManifestType") == Some(wanted))
            .collect()
    };
    let (version_files, installer_files, locale_files) = (
        of_type("version"),
        of_type("installer"),
        of_type("defaultLocale"),
    );
    for (wanted, found) in [
        ("version", &version_files),
        ("installer", &installer_files),
        ("defaultLocale", &locale_files),
    ] {
        if found.len() != 1 {
            problems.push(format!(
                "expected one {wanted} manifest, found {}",
                found.len()
            ));
        }
    }
    let (Some((_, version_manifest)), Some((_, installer)), Some((locale_name, locale))) = (
        version_files.first(),
        installer_files.first(),
        locale_files.first(),
    ) else {
        return problems;
    };

    // The three files describe one package version in one manifest syntax.
    for key in ["PackageIdentifier", "PackageVersion", "ManifestVersion"] {
        let values: BTreeSet<Option<&str>> = manifests
            .iter()
            .map(|(_, manifest)| text(manifest, key))
            .collect();
        if values.len() != 1 {
            problems.push(format!("{key} differs between the files: {values:?}"));
        }
    }
    let identifier = text(version_manifest, "PackageIdentifier").unwrap_or("");
    let package_version = text(version_manifest, "PackageVersion").unwrap_or("");

    // The folder is manifests/<first letter>/<segments...>/<version>.
    let mut expected_tail: Vec<String> = vec![identifier.get(..1).unwrap_or("").to_lowercase()];
    expected_tail.extend(identifier.split('.').map(str::to_owned));
    expected_tail.push(package_version.to_owned());
    let actual_tail: Vec<String> = dir
        .components()
        .rev()
        .take(expected_tail.len())
        .map(|component| component.as_os_str().to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    if actual_tail != expected_tail {
        problems.push(format!(
            "folder {} does not end in {} (from PackageIdentifier and PackageVersion)",
            dir.display(),
            expected_tail.join("/")
        ));
    }

    // File names follow the identifier.
    let default_locale = text(version_manifest, "DefaultLocale").unwrap_or("");
    let package_locale = text(locale, "PackageLocale").unwrap_or("");
    for (file_name, manifest) in &manifests {
        let expected = match text(manifest, "ManifestType") {
            Some("version") => format!("{identifier}.yaml"),
            Some("installer") => format!("{identifier}.installer.yaml"),
            Some("defaultLocale" | "locale") => format!(
                "{identifier}.locale.{}.yaml",
                text(manifest, "PackageLocale").unwrap_or("")
            ),
            _ => continue,
        };
        if *file_name != expected {
            problems.push(format!("{file_name} should be named {expected}"));
        }
    }
    if default_locale != package_locale {
        problems.push(format!(
            "DefaultLocale {default_locale:?} is not {locale_name}'s PackageLocale {package_locale:?}"
        ));
    }

    // Installers: our own release tag, upper-case SHA-256, nested files we build.
    let release_prefix = format!("{}/releases/download/v{package_version}/", repository_url());
    let installers = installer
        .get("Installers")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    let mut architectures = BTreeSet::new();
    let mut nested_files: Vec<&Value> = installer
        .get("NestedInstallerFiles")
        .and_then(Value::as_array)
        .map(|files| files.iter().collect())
        .unwrap_or_default();
    for entry in installers {
        let architecture = text(entry, "Architecture").unwrap_or("?");
        if !architectures.insert(architecture) {
            problems.push(format!("two installers for architecture {architecture}"));
        }
        let url = text(entry, "InstallerUrl").unwrap_or("");
        if !url.starts_with(&release_prefix) {
            problems.push(format!(
                "{architecture}: InstallerUrl {url} is not under {release_prefix}"
            ));
        }
        let digest = text(entry, "InstallerSha256").unwrap_or("");
        if !is_upper_sha256(digest) {
            problems.push(format!(
                "{architecture}: InstallerSha256 {digest:?} is not 64 upper-case hex digits"
            ));
        }
        if let Some(files) = entry.get("NestedInstallerFiles").and_then(Value::as_array) {
            nested_files.extend(files);
        }
    }
    let binaries = binary_names();
    let mut shipped = BTreeSet::new();
    for file in nested_files {
        let path = text(file, "RelativeFilePath").unwrap_or("");
        let Some(binary) = path
            .strip_suffix(".exe")
            .filter(|name| binaries.contains(*name))
        else {
            problems.push(format!(
                "RelativeFilePath {path:?} is not one of the binaries cli/Cargo.toml builds ({binaries:?}, with .exe)"
            ));
            continue;
        };
        shipped.insert(binary.to_owned());
        let alias = text(file, "PortableCommandAlias");
        if alias != Some(binary) {
            problems.push(format!(
                "{path}: PortableCommandAlias {alias:?} should be {binary:?}"
            ));
        }
    }
    if shipped != binaries {
        problems.push(format!(
            "NestedInstallerFiles ship {shipped:?}, but the package builds {binaries:?}"
        ));
    }
    problems
}

fn winget_nested_paths(dir: &Path) -> BTreeSet<String> {
    let installer: Value = serde_yaml_ng::from_str(&read(
        &dir.join(format!("{PACKAGE_IDENTIFIER}.installer.yaml")),
    ))
    .expect("the installer manifest is YAML");
    installer["NestedInstallerFiles"]
        .as_array()
        .expect("NestedInstallerFiles at the root")
        .iter()
        .filter_map(|file| text(file, "RelativeFilePath").map(str::to_owned))
        .collect()
}

// ---------------------------------------------------------------------------------------
// The Homebrew formula, read as text.
// ---------------------------------------------------------------------------------------

/// Homebrew's class name for a formula file: `jit` → `Jit`, `foo-bar` → `FooBar`.
fn formula_class_name(stem: &str) -> String {
    let mut name = String::new();
    let mut upper_next = true;
    for character in stem.chars() {
        if matches!(character, '-' | '_' | '.') {
            upper_next = true;
        } else if upper_next {
            name.extend(character.to_uppercase());
            upper_next = false;
        } else {
            name.push(if character == '+' { 'x' } else { character });
        }
    }
    name
}

/// The double-quoted strings on a line: `bin.install "jit", "jit-agent"` → both names.
fn quoted_strings(line: &str) -> Vec<&str> {
    line.split('"').skip(1).step_by(2).collect()
}

/// The argument of a one-string call such as `desc "..."`, from the first line using it.
fn call_argument<'a>(formula: &'a str, call: &str) -> Option<&'a str> {
    formula
        .lines()
        .map(str::trim)
        .find(|line| line.starts_with(&format!("{call} \"")))
        .and_then(|line| quoted_strings(line).first().copied())
}

fn formula_problems(path: &Path) -> Vec<String> {
    let formula = read(path);
    let mut problems = Vec::new();
    let stem = path
        .file_stem()
        .map(|stem| stem.to_string_lossy().into_owned())
        .unwrap_or_default();
    let class_line = format!("class {} < Formula", formula_class_name(&stem));
    if !formula.lines().any(|line| line.trim() == class_line) {
        problems.push(format!(
            "no `{class_line}` line for the file name {stem}.rb"
        ));
    }

    match call_argument(&formula, "desc") {
        Some(desc) if !desc.is_empty() && desc.len() <= 80 && !desc.ends_with('.') => {}
        other => problems.push(format!(
            "desc {other:?}: needs a description of at most 80 characters, without a final period"
        )),
    }
    match call_argument(&formula, "homepage") {
        Some(homepage) if homepage.starts_with("https://") => {}
        other => problems.push(format!("homepage {other:?}: needs an https:// URL")),
    }
    if call_argument(&formula, "license") != Some("MIT") {
        problems.push("license should be \"MIT\"".to_owned());
    }

    let release_prefix = format!("{}/releases/download/v{}/", repository_url(), version());
    let urls: Vec<&str> = formula
        .lines()
        .map(str::trim)
        .filter(|line| line.starts_with("url \""))
        .filter_map(|line| quoted_strings(line).first().copied())
        .collect();
    let digests: Vec<&str> = formula
        .lines()
        .map(str::trim)
        .filter(|line| line.starts_with("sha256 \""))
        .filter_map(|line| quoted_strings(line).first().copied())
        .collect();
    if urls.is_empty() || urls.len() != digests.len() {
        problems.push(format!(
            "{} url lines and {} sha256 lines: every archive needs both",
            urls.len(),
            digests.len()
        ));
    }
    for url in &urls {
        if !url.starts_with(&release_prefix) {
            problems.push(format!("url {url} is not under {release_prefix}"));
        }
    }
    for digest in &digests {
        let valid = digest.len() == 64
            && digest
                .bytes()
                .all(|byte| byte.is_ascii_digit() || (b'a'..=b'f').contains(&byte));
        if !valid {
            problems.push(format!("sha256 {digest:?} is not 64 lower-case hex digits"));
        }
    }
    for block in [
        "on_macos do",
        "on_linux do",
        "on_arm do",
        "on_intel do",
        "def install",
        "service do",
        "test do",
    ] {
        if !formula.lines().any(|line| line.trim() == block) {
            problems.push(format!("no `{block}` block"));
        }
    }

    let binaries = binary_names();
    let installed: BTreeSet<String> = formula
        .lines()
        .map(str::trim)
        .filter(|line| line.starts_with("bin.install "))
        .flat_map(quoted_strings)
        .map(str::to_owned)
        .collect();
    if installed != binaries {
        problems.push(format!(
            "bin.install installs {installed:?}, but the package builds {binaries:?}"
        ));
    }
    if !formula.contains("generate_completions_from_executable(bin/\"jit\", \"completions\")") {
        problems.push("completions are not generated with `jit completions`".to_owned());
    }
    if !formula.contains("Utils.safe_popen_read(bin/\"jit\", \"man\")") {
        problems.push("the man page is not generated with `jit man`".to_owned());
    }
    if !formula.contains("run [opt_bin/\"jit-agent\", \"run\"]") {
        problems.push("the service does not run `jit-agent run`".to_owned());
    }
    problems
}

// ---------------------------------------------------------------------------------------
// winget
// ---------------------------------------------------------------------------------------

#[test]
fn vendored_winget_schemas_are_the_unchanged_1_12_0_set_with_their_licence() {
    let dir = packaging_dir().join("winget/schema");
    let licence = read(&dir.join("LICENSE"));
    assert!(licence.contains("MIT License") && licence.contains("Microsoft Corporation"));
    for manifest_type in ["version", "installer", "defaultLocale", "locale"] {
        let path = dir.join(format!("1.12.0/manifest.{manifest_type}.1.12.0.json"));
        let schema: Value = serde_json::from_str(&read(&path)).expect("schema is JSON");
        assert_eq!(
            text(&schema, "$schema"),
            Some("http://json-schema.org/draft-07/schema#"),
            "{}",
            path.display()
        );
        let id = text(&schema, "$id").unwrap_or("").to_lowercase();
        assert_eq!(
            id,
            format!(
                "https://aka.ms/winget-manifest.{}.1.12.0.schema.json",
                manifest_type.to_lowercase()
            )
        );
    }
}

#[test]
fn rendered_winget_manifests_pass_the_schemas_and_the_pipeline_rules() {
    let temp = temp_dir();
    let checksums = write_fake_checksums(temp.path(), &[]);
    let dir = render_winget(&[&checksums], &temp.path().join("manifests"));

    assert_no_problems(
        &winget_problems(&dir, &WingetSchemas::load()),
        "rendered manifests",
    );

    // And they say what we mean: each architecture gets its own archive and hash.
    let installer: Value =
        serde_yaml_ng::from_str(&read(&dir.join("Jit.Jit.installer.yaml"))).expect("YAML");
    assert_eq!(text(&installer, "ReleaseDate"), Some(RELEASE_DATE));
    assert_eq!(text(&installer, "InstallerType"), Some("zip"));
    assert_eq!(text(&installer, "NestedInstallerType"), Some("portable"));
    assert_eq!(installer["Commands"], serde_json::json!(["jit"]));
    let installers = installer["Installers"].as_array().expect("Installers");
    assert_eq!(installers.len(), WINDOWS_TARGETS.len());
    for (architecture, target) in WINDOWS_TARGETS {
        let entry = installers
            .iter()
            .find(|entry| text(entry, "Architecture") == Some(architecture))
            .unwrap_or_else(|| panic!("an installer for {architecture}"));
        let asset = windows_asset(target);
        assert_eq!(
            text(entry, "InstallerUrl"),
            Some(
                format!(
                    "{}/releases/download/v{}/{asset}",
                    repository_url(),
                    version()
                )
                .as_str()
            )
        );
        assert_eq!(
            text(entry, "InstallerSha256"),
            Some(fake_digest(&asset).to_uppercase().as_str())
        );
    }
    let locale: Value =
        serde_yaml_ng::from_str(&read(&dir.join("Jit.Jit.locale.en-US.yaml"))).expect("YAML");
    assert_eq!(text(&locale, "License"), Some("MIT"));
    assert_eq!(
        text(&locale, "ReleaseNotesUrl"),
        Some(format!("{}/releases/tag/v{}", repository_url(), version()).as_str())
    );
}

#[test]
fn the_winget_validator_rejects_broken_manifests() {
    let temp = temp_dir();
    let checksums = write_fake_checksums(temp.path(), &[]);
    let good = render_winget(&[&checksums], &temp.path().join("good"));
    let schemas = WingetSchemas::load();
    assert_no_problems(&winget_problems(&good, &schemas), "the unbroken manifests");

    let x64_digest = fake_digest(&windows_asset("x86_64-pc-windows-msvc")).to_uppercase();
    let release_path = format!("/releases/download/v{}/", version());
    let cases: [(&str, &str, String, String, &str); 7] = [
        (
            "a hash that is not hex",
            "Jit.Jit.installer.yaml",
            x64_digest.clone(),
            "NOT-A-SHA256".to_owned(),
            "schema: \"NOT-A-SHA256\" does not match",
        ),
        (
            "a missing required field",
            "Jit.Jit.locale.en-US.yaml",
            "License: MIT\n".to_owned(),
            String::new(),
            "schema: \"License\" is a required property",
        ),
        (
            "a lower-case hash",
            "Jit.Jit.installer.yaml",
            x64_digest.clone(),
            x64_digest.to_lowercase(),
            "not 64 upper-case hex digits",
        ),
        (
            "a URL at another release",
            "Jit.Jit.installer.yaml",
            release_path,
            "/releases/download/v9.9.9/".to_owned(),
            "is not under",
        ),
        (
            "a nested file the package does not build",
            "Jit.Jit.installer.yaml",
            "RelativeFilePath: jit-agent.exe".to_owned(),
            "RelativeFilePath: jit-helper.exe".to_owned(),
            "is not one of the binaries",
        ),
        (
            "files that disagree on the version",
            "Jit.Jit.yaml",
            format!("PackageVersion: {}", version()),
            "PackageVersion: 9.9.9".to_owned(),
            "PackageVersion differs",
        ),
        (
            "a default locale without its file",
            "Jit.Jit.yaml",
            "DefaultLocale: en-US".to_owned(),
            "DefaultLocale: en-GB".to_owned(),
            "is not Jit.Jit.locale.en-US.yaml's PackageLocale",
        ),
    ];
    for (index, (case, file, from, to, expected)) in cases.iter().enumerate() {
        let broken = winget_manifest_dir(&temp.path().join(format!("broken-{index}")), version());
        fs::create_dir_all(&broken).expect("create the broken copy");
        for entry in fs::read_dir(&good)
            .expect("list the good manifests")
            .flatten()
        {
            let name = entry.file_name().to_string_lossy().into_owned();
            let mut content = read(&entry.path());
            if name == *file {
                assert!(
                    content.contains(from.as_str()),
                    "{case}: {file} lacks {from:?}"
                );
                content = content.replacen(from.as_str(), to, 1);
            }
            fs::write(broken.join(&name), content).expect("write the broken copy");
        }
        assert_problem(&winget_problems(&broken, &schemas), expected, case);
    }

    // A folder that does not match the identifier and version.
    let misplaced = temp.path().join("manifests/j/Jit/Other").join(version());
    fs::create_dir_all(&misplaced).expect("create the misplaced copy");
    for entry in fs::read_dir(&good)
        .expect("list the good manifests")
        .flatten()
    {
        fs::copy(entry.path(), misplaced.join(entry.file_name())).expect("copy a manifest");
    }
    assert_problem(
        &winget_problems(&misplaced, &schemas),
        "does not end in j/Jit/Jit/",
        "a misplaced folder",
    );
}

#[test]
fn the_checked_in_examples_match_the_templates() {
    let temp = temp_dir();
    let winget_root = temp.path().join("manifests");
    let formula = temp.path().join("jit.rb");
    let output = render(&[
        "examples",
        "--winget-root",
        &winget_root.display().to_string(),
        "--homebrew-output",
        &formula.display().to_string(),
    ]);
    assert_success(&output, "packaging/render examples");

    let stale = "is stale: run `packaging/render examples` and commit the result";
    let rendered_dir = winget_manifest_dir(&winget_root, version());
    let checked_in_dir = winget_manifest_dir(&packaging_dir().join("winget/manifests"), version());
    for entry in fs::read_dir(&rendered_dir)
        .expect("list the rendered examples")
        .flatten()
    {
        let checked_in = checked_in_dir.join(entry.file_name());
        assert!(
            checked_in.is_file() && read(&checked_in) == read(&entry.path()),
            "{} {stale}",
            checked_in.display()
        );
        assert!(read(&checked_in).contains("# EXAMPLE ONLY"));
    }
    let checked_in_formula = packaging_dir().join("homebrew/jit.rb");
    assert!(
        read(&checked_in_formula) == read(&formula),
        "{} {stale}",
        checked_in_formula.display()
    );

    // The examples themselves are valid: they are what a reviewer reads.
    assert_no_problems(
        &winget_problems(&checked_in_dir, &WingetSchemas::load()),
        "the checked-in winget example",
    );
    assert_no_problems(
        &formula_problems(&checked_in_formula),
        "the checked-in formula",
    );
}

#[test]
fn the_renderer_refuses_incomplete_or_malformed_checksums() {
    let temp = temp_dir();
    let missing = windows_asset("aarch64-pc-windows-msvc");
    let checksums = write_fake_checksums(temp.path(), std::slice::from_ref(&missing));
    let output_root = temp.path().join("manifests");
    let output = render(&[
        "winget",
        "--checksums",
        &checksums.display().to_string(),
        "--output-root",
        &output_root.display().to_string(),
    ]);
    assert!(
        !output.status.success(),
        "rendering without {missing} should fail"
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&missing),
        "the error names {missing}: {stderr}"
    );
    assert!(
        !output_root.exists(),
        "nothing is written when a template cannot render"
    );

    let malformed = temp.path().join("malformed.sha256");
    fs::write(&malformed, "abc123  jit-x86_64-pc-windows-msvc.zip\n").expect("write");
    let output = render(&[
        "homebrew",
        "--checksums",
        &malformed.display().to_string(),
        "--output",
        &temp.path().join("jit.rb").display().to_string(),
    ]);
    assert!(!output.status.success(), "a short digest should be refused");
    assert!(String::from_utf8_lossy(&output.stderr).contains("malformed.sha256:1"));
}

// ---------------------------------------------------------------------------------------
// Homebrew
// ---------------------------------------------------------------------------------------

#[test]
fn rendered_formula_is_ruby_with_every_required_part() {
    let temp = temp_dir();
    let checksums = write_fake_checksums(temp.path(), &[]);
    let formula = temp.path().join("jit.rb");
    render_homebrew(&[&checksums], &formula);

    assert_no_problems(&formula_problems(&formula), "the rendered formula");
    let text = read(&formula);
    for target in UNIX_TARGETS {
        let asset = unix_asset(target);
        let url_line = format!(
            "url \"{}/releases/download/v{}/{asset}\"",
            repository_url(),
            version()
        );
        let digest_line = format!("sha256 \"{}\"", fake_digest(&asset));
        let lines: Vec<&str> = text.lines().map(str::trim).collect();
        let position = lines
            .iter()
            .position(|line| *line == url_line)
            .unwrap_or_else(|| panic!("no `{url_line}`"));
        assert_eq!(
            lines.get(position + 1),
            Some(&digest_line.as_str()),
            "{asset}'s url is followed by its own sha256"
        );
    }

    let output = run(Command::new("ruby").arg("-c").arg(&formula), "ruby");
    assert_success(&output, "ruby -c jit.rb");
}

#[test]
fn the_formula_check_rejects_broken_formulae() {
    let temp = temp_dir();
    let checksums = write_fake_checksums(temp.path(), &[]);
    let good = temp.path().join("jit.rb");
    render_homebrew(&[&checksums], &good);
    let good_text = read(&good);
    let some_digest = fake_digest(&unix_asset("x86_64-apple-darwin"));

    let cases = [
        (
            "no test block",
            "  test do\n",
            "  def more_tests\n",
            "no `test do` block",
        ),
        (
            "no service block",
            "  service do\n",
            "  def service_off\n",
            "no `service do` block",
        ),
        (
            "a short hash",
            some_digest.as_str(),
            "abc123",
            "is not 64 lower-case hex digits",
        ),
        (
            "a binary left out",
            "bin.install \"jit\", \"jit-agent\"",
            "bin.install \"jit\"",
            "bin.install installs",
        ),
        ("no licence", "  license \"MIT\"\n", "", "license should be"),
        (
            "a renamed class",
            "class Jit < Formula",
            "class JitCli < Formula",
            "no `class Jit",
        ),
    ];
    for (index, (case, from, to, expected)) in cases.into_iter().enumerate() {
        assert!(
            good_text.contains(from),
            "{case}: the formula lacks {from:?}"
        );
        let broken = temp.path().join(format!("case-{index}")).join("jit.rb");
        fs::create_dir_all(broken.parent().expect("has a parent")).expect("create dir");
        fs::write(&broken, good_text.replacen(from, to, 1)).expect("write");
        assert_problem(&formula_problems(&broken), expected, case);
    }
    assert_eq!(formula_class_name("jit"), "Jit");
    assert_eq!(formula_class_name("jit-cli"), "JitCli");
}

/// The commands of the formula's `test do` block, run against this build with the clean
/// environment `brew test` gives them (HOME = a fresh directory, nothing else).
fn jit_in_clean_home(home: &Path, binary: &str) -> Command {
    let mut command = Command::new(binary);
    command.env_clear().env("HOME", home).current_dir(home);
    command
}

#[test]
fn formula_test_block_config_commands_hold_for_this_build() {
    let temp = temp_dir();
    let home = temp.path();
    let jit = env!("CARGO_BIN_EXE_jit");

    let output = jit_in_clean_home(home, jit)
        .args(["config", "path"])
        .output()
        .expect("run jit config path");
    assert_success(&output, "jit config path");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains(&home.display().to_string()),
        "the default config path is under HOME: {stdout}"
    );

    fs::write(home.join("jit.toml"), "justification = \"brew test\"\n").expect("write config");
    let output = jit_in_clean_home(home, jit)
        .args(["--config", "jit.toml", "config", "show"])
        .output()
        .expect("run jit config show");
    assert_success(&output, "jit config show");
    assert!(String::from_utf8_lossy(&output.stdout).contains("brew test"));

    fs::write(home.join("typo.toml"), "clod = \"AzureCloud\"\n").expect("write config");
    let output = jit_in_clean_home(home, jit)
        .args(["--config", "typo.toml", "config", "show"])
        .output()
        .expect("run jit config show");
    assert_eq!(
        output.status.code(),
        Some(2),
        "a config typo is a usage error"
    );
}

#[test]
#[ignore = "needs `jit list` to sign in (exit code 4 without credentials) and `jit-agent --help`; both belong to the command line, not to packaging"]
fn formula_test_block_sign_in_and_agent_commands_hold_for_this_build() {
    let temp = temp_dir();
    let home = temp.path();
    let output = jit_in_clean_home(home, env!("CARGO_BIN_EXE_jit"))
        .env("JIT_AUTH", "service-principal")
        .env("JIT_NO_AGENT", "1")
        .arg("list")
        .output()
        .expect("run jit list");
    assert_eq!(
        output.status.code(),
        Some(4),
        "a service principal without credentials cannot sign in: {}",
        String::from_utf8_lossy(&output.stderr)
    );

    let output = jit_in_clean_home(home, env!("CARGO_BIN_EXE_jit-agent"))
        .arg("--help")
        .output()
        .expect("run jit-agent --help");
    assert_success(&output, "jit-agent --help");
    assert!(String::from_utf8_lossy(&output.stdout).contains("jit-agent"));
}

// ---------------------------------------------------------------------------------------
// Release archives
// ---------------------------------------------------------------------------------------

fn tool_stdout(command: &mut Command, package: &str, what: &str) -> String {
    let output = run(command, package);
    assert_success(&output, what);
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn build_release_packs_both_layouts_and_its_checksums_feed_the_renderer() {
    let script = packaging_dir().join("build-release");
    assert_success(
        &run(Command::new("bash").arg("-n").arg(&script), "bash"),
        "bash -n packaging/build-release",
    );

    // No `cargo build --release` in tests: small stand-ins take the binaries' places in the
    // archives (compressing 50 MB of debug binaries twice would only cost time), and this
    // build's real `jit` generates the completions and the man page.
    let temp = temp_dir();
    let binaries = temp.path().join("binaries");
    fs::create_dir_all(&binaries).expect("create the binaries folder");
    for name in binary_names() {
        for file in [name.clone(), format!("{name}.exe")] {
            fs::write(binaries.join(file), format!("stand-in for {name}\n"))
                .expect("write a stand-in binary");
        }
    }
    let generator = Path::new(env!("CARGO_BIN_EXE_jit"));
    let out = temp.path().join("dist");
    let unix_target = "x86_64-unknown-linux-gnu";
    let windows_target = "x86_64-pc-windows-msvc";
    for target in [unix_target, windows_target] {
        let output = run(
            Command::new("bash")
                .arg(&script)
                .arg("--binaries")
                .arg(&binaries)
                .arg("--generator")
                .arg(generator)
                .arg(target)
                .arg(&out),
            "bash",
        );
        assert_success(&output, &format!("packaging/build-release {target}"));
    }

    let payload = |binary_suffix: &str| -> BTreeSet<String> {
        let mut files: BTreeSet<String> = binary_names()
            .into_iter()
            .map(|name| format!("{name}{binary_suffix}"))
            .collect();
        for file in [
            "completions/jit.bash",
            "completions/_jit",
            "completions/jit.fish",
            "completions/_jit.ps1",
            "man/jit.1",
            "README.md",
            "LICENSE",
        ] {
            files.insert(file.to_owned());
        }
        files
    };

    // Unix: everything under one folder named after the archive.
    let tarball = out.join(unix_asset(unix_target));
    let listing = tool_stdout(
        Command::new("tar").arg("-tzf").arg(&tarball),
        "tar",
        "tar -t",
    );
    let folder = format!("jit-{unix_target}/");
    let files: BTreeSet<String> = listing
        .lines()
        .filter(|entry| !entry.ends_with('/'))
        .map(|entry| {
            entry
                .strip_prefix(&folder)
                .unwrap_or_else(|| panic!("{entry} is outside {folder}"))
                .to_owned()
        })
        .collect();
    assert_eq!(files, payload(""));

    // The generated files are the real thing, not empty placeholders.
    let unpacked = temp.path().join("unpacked");
    fs::create_dir_all(&unpacked).expect("create the unpack folder");
    tool_stdout(
        Command::new("tar")
            .arg("-xzf")
            .arg(&tarball)
            .arg("-C")
            .arg(&unpacked),
        "tar",
        "tar -x",
    );
    let root = unpacked.join(&folder);
    assert!(read(&root.join("man/jit.1")).contains(".TH jit 1"));
    assert!(read(&root.join("completions/_jit")).starts_with("#compdef jit"));
    assert!(read(&root.join("completions/jit.bash")).contains("complete -F"));
    assert!(read(&root.join("completions/jit.fish")).contains("complete -c jit"));
    assert!(read(&root.join("completions/_jit.ps1")).contains("Register-ArgumentCompleter"));

    // Windows: the files sit at the zip's root, where winget's RelativeFilePath looks.
    let zip = out.join(windows_asset(windows_target));
    let listing = tool_stdout(
        Command::new("python3")
            .args([
                "-c",
                "import sys, zipfile; print('\\n'.join(zipfile.ZipFile(sys.argv[1]).namelist()))",
            ])
            .arg(&zip),
        "python3",
        "list the zip",
    );
    let files: BTreeSet<String> = listing
        .lines()
        .filter(|entry| !entry.ends_with('/'))
        .map(str::to_owned)
        .collect();
    assert_eq!(files, payload(".exe"));

    // The checksum files are right, and the renderer reads them as they are.
    for asset in [unix_asset(unix_target), windows_asset(windows_target)] {
        let checksum = format!("{asset}.sha256");
        tool_stdout(
            Command::new("sha256sum")
                .arg("--check")
                .arg(&checksum)
                .current_dir(&out),
            "coreutils",
            &format!("sha256sum --check {checksum}"),
        );
    }
    let real_digest = |asset: &str| -> String {
        read(&out.join(format!("{asset}.sha256")))
            .split_whitespace()
            .next()
            .expect("a digest")
            .to_owned()
    };
    let built = [unix_asset(unix_target), windows_asset(windows_target)];
    let fake = write_fake_checksums(temp.path(), &built);
    let unix_checksum = out.join(format!("{}.sha256", built[0]));
    let windows_checksum = out.join(format!("{}.sha256", built[1]));
    let checksum_files = [
        fake.as_path(),
        unix_checksum.as_path(),
        windows_checksum.as_path(),
    ];

    let manifests = render_winget(&checksum_files, &temp.path().join("manifests"));
    assert_no_problems(
        &winget_problems(&manifests, &WingetSchemas::load()),
        "manifests rendered from real checksums",
    );
    let installer = read(&manifests.join("Jit.Jit.installer.yaml"));
    assert!(installer.contains(&format!(
        "InstallerSha256: {}",
        real_digest(&built[1]).to_uppercase()
    )));
    // Every nested file winget will look for is in the zip.
    for path in winget_nested_paths(&manifests) {
        assert!(files.contains(&path), "{path} is not in {}", zip.display());
    }

    let formula = temp.path().join("jit.rb");
    render_homebrew(&checksum_files, &formula);
    assert!(read(&formula).contains(&format!("sha256 \"{}\"", real_digest(&built[0]))));
}
