//! Resident code pages (a module of `main.rs`, not of the library, which
//! forbids unsafe code).
//!
//! Most of an idle sidecar's RSS is not memory it allocated but its binary
//! and libraries, mapped from the page cache: of 11.9 MiB for a plain
//! release build with three probes, 1.0 MiB was anonymous, 8.1 MiB the
//! binary's code and 1.3 MiB its read-only data. Much of that ran only to
//! start (argument parsing, configuration, each module's set-up), and it
//! stays mapped, with the 64 KiB around every page touched (the kernel's
//! fault-around, which no `madvise` turns off).
//!
//! [`shed_start_up_pages`], called once start-up is over, unmaps the pages
//! of every mapping that maps a file private and read-only and was never
//! written. What the sidecar goes on running faults back in (a minor
//! fault: the page cache still holds it); what ran only to start stays
//! out. It changes what the process maps, not what the kernel caches: the
//! pages stay cached, as any file's, until memory is short, and unmapped
//! they are the first the kernel may drop. Nothing is lost: a private
//! mapping never written holds exactly the file's bytes. Relocated
//! read-only data (`RELRO`) was written before it was made read-only; its
//! pages are the process's own (`Anonymous` in `smaps`), so such a mapping
//! is left alone, as is every writable one.

#![allow(unsafe_code)]

/// Unmaps the clean file pages of the process (see the module doc) and
/// returns how many bytes of mappings it advised.
#[cfg(target_os = "linux")]
pub fn shed_start_up_pages() -> usize {
    let Ok(smaps) = std::fs::read_to_string("/proc/self/smaps") else {
        return 0;
    };
    let mut advised = 0;
    for (start, end) in clean_file_mappings(&smaps) {
        let (addr, len) = (start as *mut libc::c_void, end - start);
        // SAFETY: the range is a whole mapping of this process, private,
        // read-only and backed by a file, with no page of its own (no page
        // was ever written): every page it maps is the file's, so dropping
        // them only means the next access maps them again from the file.
        let dropped = unsafe { libc::madvise(addr, len, libc::MADV_DONTNEED) == 0 };
        if dropped {
            advised += len;
        }
    }
    advised
}

/// Nothing to shed elsewhere.
#[cfg(not(target_os = "linux"))]
pub fn shed_start_up_pages() -> usize {
    0
}

/// The ranges of `/proc/self/smaps` mappings that map a file private and
/// read-only (executable or not) and hold no anonymous page: a read-only
/// mapping that was written before it was made read-only (relocated data,
/// `RELRO`) holds anonymous pages and is left alone.
fn clean_file_mappings(smaps: &str) -> Vec<(usize, usize)> {
    let mut clean = Vec::new();
    let mut candidate = None;
    for line in smaps.lines() {
        if let Some(range) = mapping_header(line) {
            candidate = range;
        } else if let Some(anonymous) = line.strip_prefix("Anonymous:") {
            let untouched = anonymous.trim_start().starts_with("0 ");
            if let (Some(range), true) = (candidate.take(), untouched) {
                clean.push(range);
            }
        }
    }
    clean
}

/// For a mapping's header line: `Some` of its range if it maps a file
/// private and read-only, `Some(None)` for any other mapping, `None` for a
/// line that is no header.
fn mapping_header(line: &str) -> Option<Option<(usize, usize)>> {
    let mut columns = line.split_ascii_whitespace();
    let (start, end) = columns.next()?.split_once('-')?;
    let start = usize::from_str_radix(start, 16).ok()?;
    let end = usize::from_str_radix(end, 16).ok()?;
    let perms = columns.next()?.as_bytes();
    let path = columns.nth(3).unwrap_or("");
    let read_only_private = perms.len() == 4 && perms[1] == b'-' && perms[3] == b'p';
    Some((read_only_private && path.starts_with('/')).then_some((start, end)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_only_private_read_only_file_mappings_never_written() {
        let smaps = "\
55aeb07e0000-55aeb085e000 r--p 00000000 fe:00 10018895 /usr/bin/sidewatch
Size:                504 kB
Anonymous:             0 kB
55aeb085e000-55aeb10fa000 r-xp 002f0000 fe:00 10018895 /usr/bin/sidewatch
Size:               8816 kB
Anonymous:             0 kB
55aeb10fa000-55aeb1158000 r--p 00b8b000 fe:00 10018895 /usr/bin/sidewatch
Size:                376 kB
Anonymous:           368 kB
55aeb1158000-55aeb115f000 rw-p 00be8000 fe:00 10018895 /usr/bin/sidewatch
Anonymous:             0 kB
7f0000000000-7f0000001000 r-xp 00000000 00:00 0
Anonymous:             0 kB
7f0000002000-7f0000003000 r--s 00000000 fe:00 12 /dev/shm/x
Anonymous:             0 kB
7ffd1c5e0000-7ffd1c5e2000 r-xp 00000000 00:00 0                          [vdso]
Anonymous:             0 kB
";
        assert_eq!(
            clean_file_mappings(smaps),
            [
                (0x55ae_b07e_0000, 0x55ae_b085_e000),
                (0x55ae_b085_e000, 0x55ae_b10f_a000)
            ]
        );
    }

    #[test]
    fn shedding_unmaps_clean_pages_and_the_process_runs_on() {
        let mapped = || {
            let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap();
            let clean = clean_file_mappings(&smaps);
            resident_kib(&smaps, &clean)
        };
        let before = mapped();
        assert!(shed_start_up_pages() > 0);
        let after = mapped();
        assert!(
            after < before,
            "{after} KiB mapped after, {before} KiB before"
        );
        // Code mapped back in as it runs: formatting, allocation, a thread.
        let joined = std::thread::spawn(|| format!("{:?}", vec![1u8; 3])).join();
        assert_eq!(joined.unwrap(), "[1, 1, 1]");
    }

    /// The `Rss` of the mappings in `ranges`, in KiB.
    fn resident_kib(smaps: &str, ranges: &[(usize, usize)]) -> u64 {
        let mut total = 0;
        let mut counted = false;
        for line in smaps.lines() {
            if let Some(header) = mapping_header(line) {
                counted = header.is_some_and(|range| ranges.contains(&range));
            } else if let (Some(rss), true) = (line.strip_prefix("Rss:"), counted) {
                total += rss.trim().trim_end_matches(" kB").parse::<u64>().unwrap();
            }
        }
        total
    }
}
