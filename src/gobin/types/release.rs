//! Go releases as type-descriptor layouts care about them, and reflect's
//! kind numbering.

/// A Go release as `major.minor` (the patch level never changes layouts).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct GoRelease {
    pub major: u32,
    pub minor: u32,
}

impl GoRelease {
    /// Parse `go1.22.10`, `go1.21rc2`, `devel go1.23-abc...` (as build info
    /// records them).
    pub fn parse(version: &str) -> Option<GoRelease> {
        let v = version.strip_prefix("devel ").unwrap_or(version);
        let rest = v.strip_prefix("go")?;
        let mut parts = rest.splitn(2, '.');
        let major = parts.next()?.parse().ok()?;
        let minor: String = parts
            .next()?
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        Some(GoRelease {
            major,
            minor: minor.parse().ok()?,
        })
    }

    pub(crate) fn at_least(self, minor: u32) -> bool {
        self.major > 1 || (self.major == 1 && self.minor >= minor)
    }
}

impl std::fmt::Display for GoRelease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

/// reflect.Kind, numbered as Go numbers it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    Bool = 1,
    Int,
    Int8,
    Int16,
    Int32,
    Int64,
    Uint,
    Uint8,
    Uint16,
    Uint32,
    Uint64,
    Uintptr,
    Float32,
    Float64,
    Complex64,
    Complex128,
    Array,
    Chan,
    Func,
    Interface,
    Map,
    Pointer,
    Slice,
    String,
    Struct,
    UnsafePointer,
}

impl Kind {
    const ALL: [Kind; 26] = [
        Kind::Bool,
        Kind::Int,
        Kind::Int8,
        Kind::Int16,
        Kind::Int32,
        Kind::Int64,
        Kind::Uint,
        Kind::Uint8,
        Kind::Uint16,
        Kind::Uint32,
        Kind::Uint64,
        Kind::Uintptr,
        Kind::Float32,
        Kind::Float64,
        Kind::Complex64,
        Kind::Complex128,
        Kind::Array,
        Kind::Chan,
        Kind::Func,
        Kind::Interface,
        Kind::Map,
        Kind::Pointer,
        Kind::Slice,
        Kind::String,
        Kind::Struct,
        Kind::UnsafePointer,
    ];

    /// The kind numbered `n` (1..=26); 0 (`Invalid`) is never a descriptor's kind.
    pub fn from_number(n: u8) -> Option<Kind> {
        Kind::ALL.get(usize::from(n).checked_sub(1)?).copied()
    }

    /// As `reflect.Kind.String()` prints it.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Bool => "bool",
            Kind::Int => "int",
            Kind::Int8 => "int8",
            Kind::Int16 => "int16",
            Kind::Int32 => "int32",
            Kind::Int64 => "int64",
            Kind::Uint => "uint",
            Kind::Uint8 => "uint8",
            Kind::Uint16 => "uint16",
            Kind::Uint32 => "uint32",
            Kind::Uint64 => "uint64",
            Kind::Uintptr => "uintptr",
            Kind::Float32 => "float32",
            Kind::Float64 => "float64",
            Kind::Complex64 => "complex64",
            Kind::Complex128 => "complex128",
            Kind::Array => "array",
            Kind::Chan => "chan",
            Kind::Func => "func",
            Kind::Interface => "interface",
            Kind::Map => "map",
            Kind::Pointer => "ptr",
            Kind::Slice => "slice",
            Kind::String => "string",
            Kind::Struct => "struct",
            Kind::UnsafePointer => "unsafe.Pointer",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn releases() {
        let r = |s| GoRelease::parse(s);
        assert_eq!(
            r("go1.22.10"),
            Some(GoRelease {
                major: 1,
                minor: 22
            })
        );
        assert_eq!(
            r("go1.21rc2"),
            Some(GoRelease {
                major: 1,
                minor: 21
            })
        );
        assert_eq!(
            r("devel go1.23-abc"),
            Some(GoRelease {
                major: 1,
                minor: 23
            })
        );
        assert_eq!(r("1.22"), None);
    }

    #[test]
    fn kinds_are_numbered_as_in_go() {
        assert_eq!(Kind::from_number(0), None);
        assert_eq!(Kind::from_number(24), Some(Kind::String));
        assert_eq!(Kind::from_number(22), Some(Kind::Pointer));
        assert_eq!(Kind::from_number(25), Some(Kind::Struct));
        assert_eq!(Kind::from_number(26), Some(Kind::UnsafePointer));
        assert_eq!(Kind::from_number(27), None);
        assert_eq!(Kind::Pointer.as_str(), "ptr");
    }
}
