//! What `deploy` puts next to the DAGs: `plugins.zip` (the wheels and a constraints file) and the
//! `requirements.txt` that installs them on MWAA's machines without reaching an index, the way
//! MWAA documents for environments whose workers cannot fetch packages. Both are built
//! byte-for-byte the same from the same inputs, so an unchanged deploy uploads nothing.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// A wheel file and what its name says (PEP 427: `name-version(-build)?-python-abi-platform.whl`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wheel {
    pub path: PathBuf,
    pub file_name: String,
    /// Normalized project name (PEP 503: lowercase, runs of `-_.` as one `-`).
    pub name: String,
    pub version: String,
    pub python: String,
    pub abi: String,
    pub platform: String,
}

impl Wheel {
    pub fn from_path(path: &Path) -> Result<Self> {
        let file_name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_string();
        let bad = || {
            Error::Config(format!("{}: not a wheel file name (name-version-python-abi-platform.whl)", path.display()))
        };
        let stem = file_name.strip_suffix(".whl").ok_or_else(bad)?;
        let parts: Vec<&str> = stem.split('-').collect();
        let (name, version, tags) = match parts.len() {
            5 => (parts[0], parts[1], &parts[2..]),
            6 => (parts[0], parts[1], &parts[3..]),
            _ => return Err(bad()),
        };
        Ok(Wheel {
            path: path.to_path_buf(),
            name: normalize(name),
            version: version.to_string(),
            python: tags[0].to_string(),
            abi: tags[1].to_string(),
            platform: tags[2].to_string(),
            file_name,
        })
    }

    /// Why this wheel cannot install on CPython `python` on Linux x86_64 (MWAA's machines), if it
    /// cannot.
    pub fn incompatibility(&self, python: (u32, u32)) -> Option<String> {
        let (major, minor) = python;
        let python_ok = self.python.split('.').any(|tag| {
            if let Some(v) = tag.strip_prefix("py") {
                return v.starts_with(&major.to_string());
            }
            let Some(digits) = tag.strip_prefix("cp").filter(|d| d.len() >= 2 && d.bytes().all(|b| b.is_ascii_digit()))
            else {
                return false;
            };
            let (tag_major, tag_minor): (u32, u32) =
                (digits[..1].parse().unwrap_or(0), digits[1..].parse().unwrap_or(0));
            if self.abi == "abi3" {
                tag_major == major && tag_minor <= minor
            } else {
                (tag_major, tag_minor) == (major, minor)
            }
        });
        if !python_ok {
            return Some(format!(
                "{} is built for {} ({}), not for the environment's Python {major}.{minor}",
                self.file_name, self.python, self.abi
            ));
        }
        let platform_ok =
            self.platform.split('.').any(|p| p == "any" || (p.contains("linux") && p.ends_with("x86_64")));
        if !platform_ok {
            return Some(format!("{} is built for {}, not for MWAA's Linux x86_64", self.file_name, self.platform));
        }
        None
    }

    /// Whether the wheel is tagged for a whole range of Linux systems (a `linux_x86_64` wheel is
    /// built for the machine that built it).
    pub fn is_portable(&self) -> bool {
        self.platform.split('.').all(|p| p == "any" || p.starts_with("manylinux") || p.starts_with("musllinux"))
    }
}

/// PEP 503 normalization of a project name.
pub fn normalize(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut sep = false;
    for c in name.chars() {
        if matches!(c, '-' | '_' | '.') {
            sep = true;
            continue;
        }
        if sep && !out.is_empty() {
            out.push('-');
        }
        sep = false;
        out.push(c.to_ascii_lowercase());
    }
    out
}

/// The project a requirement or constraint line names (`Foo_Bar>=1 ; python_version...` →
/// `foo-bar`), if it names one.
fn named_project(line: &str) -> Option<String> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') || line.starts_with('-') {
        return None;
    }
    let end = line.find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))).unwrap_or(line.len());
    (end > 0).then(|| normalize(&line[..end]))
}

/// The files of the bundle, each with its key-to-be and bytes.
pub struct Bundle {
    pub plugins_zip: Vec<u8>,
    pub requirements: Vec<u8>,
    pub wheels: Vec<Wheel>,
    /// The pinpipe version `requirements.txt` installs.
    pub pinpipe_version: String,
}

/// Builds `plugins.zip` (the wheels at its root and `constraints.txt`) and `requirements.txt`.
/// `user_constraints` is the text of a constraints file to start from.
pub fn build(wheels: &[Wheel], user_constraints: Option<&str>, plugins_dir: &str) -> Result<Bundle> {
    let mut by_name: BTreeMap<&str, &Wheel> = BTreeMap::new();
    for wheel in wheels {
        if let Some(other) = by_name.insert(&wheel.name, wheel) {
            return Err(Error::Config(format!(
                "two wheels of {}: {} and {} (give one)",
                wheel.name, other.file_name, wheel.file_name
            )));
        }
    }
    let pinpipe = by_name.get("pinpipe").ok_or_else(|| {
        Error::Config("wheels: the pinpipe wheel is required (--wheel; `make wheel` builds the manylinux one)".into())
    })?;

    let mut constraints = String::from(
        "# Written by `pinpipe mwaa deploy`: the versions of the wheels in plugins.zip, which is\n\
         # all pip may install from (requirements.txt says --no-index).\n",
    );
    for line in user_constraints.unwrap_or_default().lines() {
        if named_project(line).is_some_and(|name| by_name.contains_key(name.as_str())) {
            continue;
        }
        constraints.push_str(line);
        constraints.push('\n');
    }
    for wheel in by_name.values() {
        constraints.push_str(&format!("{}=={}\n", wheel.name, wheel.version));
    }

    let requirements = format!(
        "# Written by `pinpipe mwaa deploy`: installs pinpipe from the wheels that plugins.zip unpacks\n\
         # into {plugins_dir}, with no package index (workers need no internet access).\n\
         --find-links {plugins_dir}\n\
         --no-index\n\
         --constraint {plugins_dir}/constraints.txt\n\
         pinpipe=={}\n",
        pinpipe.version
    );

    let mut entries: Vec<(String, Vec<u8>)> = vec![("constraints.txt".into(), constraints.into_bytes())];
    for wheel in by_name.values() {
        let bytes = std::fs::read(&wheel.path).map_err(Error::io(format!("read {}", wheel.path.display())))?;
        entries.push((wheel.file_name.clone(), bytes));
    }
    Ok(Bundle {
        plugins_zip: zip_stored(&entries)?,
        requirements: requirements.into_bytes(),
        wheels: by_name.values().map(|w| (*w).clone()).collect(),
        pinpipe_version: pinpipe.version.clone(),
    })
}

/// A ZIP archive of `entries` (name, bytes), stored without compression (wheels are compressed
/// already) and with fixed timestamps and modes: the same entries always give the same bytes.
pub fn zip_stored(entries: &[(String, Vec<u8>)]) -> Result<Vec<u8>> {
    const DOS_DATE_1980_01_01: u16 = (1 << 5) | 1;
    const UTF8_NAMES: u16 = 1 << 11;
    let too_big = || Error::Config("plugins.zip would exceed 4 GiB or 65,535 files".into());
    let mut out = Vec::new();
    let mut central = Vec::new();
    for (name, data) in entries {
        let offset = u32::try_from(out.len()).map_err(|_| too_big())?;
        let size = u32::try_from(data.len()).map_err(|_| too_big())?;
        let name_len = u16::try_from(name.len()).map_err(|_| too_big())?;
        let crc = crc32fast::hash(data);
        // local file header
        out.extend_from_slice(&0x0403_4b50_u32.to_le_bytes());
        for v in [20_u16, UTF8_NAMES, 0, 0, DOS_DATE_1980_01_01] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        for v in [crc, size, size] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        out.extend_from_slice(&name_len.to_le_bytes());
        out.extend_from_slice(&0_u16.to_le_bytes());
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(data);
        // central directory entry: made by Unix (3), regular file rw-r--r--
        central.extend_from_slice(&0x0201_4b50_u32.to_le_bytes());
        for v in [(3 << 8) | 20_u16, 20, UTF8_NAMES, 0, 0, DOS_DATE_1980_01_01] {
            central.extend_from_slice(&v.to_le_bytes());
        }
        for v in [crc, size, size] {
            central.extend_from_slice(&v.to_le_bytes());
        }
        for v in [name_len, 0, 0, 0, 0] {
            central.extend_from_slice(&v.to_le_bytes());
        }
        central.extend_from_slice(&(0o100644_u32 << 16).to_le_bytes());
        central.extend_from_slice(&offset.to_le_bytes());
        central.extend_from_slice(name.as_bytes());
    }
    let count = u16::try_from(entries.len()).map_err(|_| too_big())?;
    let central_offset = u32::try_from(out.len()).map_err(|_| too_big())?;
    let central_size = u32::try_from(central.len()).map_err(|_| too_big())?;
    out.extend_from_slice(&central);
    out.extend_from_slice(&0x0605_4b50_u32.to_le_bytes());
    for v in [0_u16, 0, count, count] {
        out.extend_from_slice(&v.to_le_bytes());
    }
    out.extend_from_slice(&central_size.to_le_bytes());
    out.extend_from_slice(&central_offset.to_le_bytes());
    out.extend_from_slice(&0_u16.to_le_bytes());
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wheel(name: &str) -> Wheel {
        Wheel::from_path(Path::new(name)).unwrap()
    }

    #[test]
    fn wheel_names_say_where_they_install() {
        let w = wheel("pinpipe-0.1.0-cp311-abi3-manylinux_2_28_x86_64.whl");
        assert_eq!((w.name.as_str(), w.version.as_str()), ("pinpipe", "0.1.0"));
        assert_eq!(w.incompatibility((3, 11)), None);
        assert_eq!(w.incompatibility((3, 12)), None, "abi3 serves later Pythons");
        assert!(w.incompatibility((3, 10)).is_some());
        assert!(w.is_portable());
        let w = wheel("pyarrow-18.1.0-cp311-cp311-manylinux_2_28_x86_64.whl");
        assert_eq!(w.incompatibility((3, 11)), None);
        assert!(w.incompatibility((3, 12)).unwrap().contains("Python 3.12"));
        assert!(wheel("pinpipe-0.1.0-cp311-abi3-linux_x86_64.whl").incompatibility((3, 11)).is_none());
        assert!(!wheel("pinpipe-0.1.0-cp311-abi3-linux_x86_64.whl").is_portable());
        assert!(wheel("x-1-cp311-abi3-macosx_11_0_arm64.whl").incompatibility((3, 11)).unwrap().contains("x86_64"));
        assert_eq!(wheel("Typing_Extensions-4.1-py3-none-any.whl").name, "typing-extensions");
        assert!(wheel("typing_extensions-4.1-py3-none-any.whl").incompatibility((3, 12)).is_none());
        assert!(Wheel::from_path(Path::new("pinpipe.tar.gz")).is_err());
    }

    #[test]
    fn the_bundle_pins_what_it_carries_over_the_users_constraints() {
        let dir = tempfile::tempdir().unwrap();
        let mut wheels = Vec::new();
        for name in [
            "pinpipe-0.2.0-cp311-abi3-manylinux_2_28_x86_64.whl",
            "pyarrow-18.1.0-cp311-cp311-manylinux_2_28_x86_64.whl",
        ] {
            std::fs::write(dir.path().join(name), name.as_bytes()).unwrap();
            wheels.push(Wheel::from_path(&dir.path().join(name)).unwrap());
        }
        let user = "# airflow\nPyArrow==14.0.2\nrequests==2.31.0\n";
        let a = build(&wheels, Some(user), PLUGINS).unwrap();
        let b = build(&wheels, Some(user), PLUGINS).unwrap();
        assert_eq!(a.plugins_zip, b.plugins_zip, "the same inputs give the same bytes");
        let text = String::from_utf8(a.requirements.clone()).unwrap();
        assert!(text.contains("--no-index\n") && text.contains("--find-links /usr/local/airflow/plugins\n"));
        assert!(text.contains("--constraint /usr/local/airflow/plugins/constraints.txt\n"));
        assert!(text.ends_with("pinpipe==0.2.0\n"), "{text}");
        let zipped = String::from_utf8_lossy(&a.plugins_zip);
        assert!(zipped.contains("# airflow\nrequests==2.31.0\npinpipe==0.2.0\npyarrow==18.1.0\n"), "{zipped}");
        assert!(!zipped.contains("PyArrow==14"), "the bundled pyarrow's pin replaces the user's");
        assert!(build(&wheels[1..], None, PLUGINS).is_err(), "the pinpipe wheel is required");
    }

    const PLUGINS: &str = "/usr/local/airflow/plugins";

    #[test]
    fn named_projects_are_read_from_requirement_lines() {
        assert_eq!(named_project("Foo_Bar>=1; python_version<'3.12'"), Some("foo-bar".into()));
        assert_eq!(named_project("--no-index"), None);
        assert_eq!(named_project("# c"), None);
    }
}
