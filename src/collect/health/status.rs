//! The set of HTTP status codes a probe accepts: exact codes and classes.

/// Accepted status codes, parsed from entries like `"200"`, `"204"`, `"2xx"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusSet {
    codes: Vec<u16>,
    classes: Vec<u16>,
}

impl StatusSet {
    /// Parses config entries; an empty list means `2xx`.
    pub fn parse(entries: &[String]) -> Result<Self, String> {
        let mut set = StatusSet {
            codes: Vec::new(),
            classes: Vec::new(),
        };
        for entry in entries {
            let entry = entry.trim().to_ascii_lowercase();
            if let Some(class) = entry.strip_suffix("xx") {
                match class.parse::<u16>() {
                    Ok(c @ 1..=5) if class.len() == 1 => set.classes.push(c),
                    _ => return Err(format!("{entry:?} is not a status class (1xx..5xx)")),
                }
            } else {
                match entry.parse::<u16>() {
                    Ok(code @ 100..=599) => set.codes.push(code),
                    _ => return Err(format!("{entry:?} is not an HTTP status code or class")),
                }
            }
        }
        if set.codes.is_empty() && set.classes.is_empty() {
            set.classes.push(2);
        }
        Ok(set)
    }

    /// Whether `status` counts as healthy.
    pub fn contains(&self, status: u16) -> bool {
        self.codes.contains(&status) || self.classes.contains(&(status / 100))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(entries: &[&str]) -> Result<StatusSet, String> {
        StatusSet::parse(&entries.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn codes_and_classes() {
        let s = set(&["2xx", "304"]).unwrap();
        assert!(s.contains(200) && s.contains(299) && s.contains(304));
        assert!(!s.contains(301) && !s.contains(500));
        assert!(set(&[]).unwrap().contains(204));
    }

    #[test]
    fn rejects_nonsense() {
        assert!(set(&["abc"]).is_err());
        assert!(set(&["9xx"]).is_err());
        assert!(set(&["99"]).is_err());
        assert!(set(&["22xx"]).is_err());
    }
}
