//! User-namespace id maps: checked as the kernel checks them when the init
//! writes `/proc/<pid>/uid_map`, and applied to the owners of the container
//! root's files when the image is written (so that root in the container
//! owns what root in the image owned, as Docker's userns-remap does).

use mkrootfs_config::container::IdMap;

/// Lines the kernel accepts in one map (since Linux 4.15).
pub const MAX_LINES: usize = 340;

/// The kernel's rules for a map: at most [`MAX_LINES`] ranges, and no two
/// ranges overlapping, neither inside nor outside (`user_namespaces(7)`).
pub fn check(kind: &str, maps: &[IdMap]) -> Result<(), String> {
    if maps.is_empty() {
        return Err(format!(
            "{kind} is empty: a user namespace needs at least one range"
        ));
    }
    if maps.len() > MAX_LINES {
        return Err(format!(
            "{kind} has {} ranges; the kernel accepts at most {MAX_LINES}",
            maps.len()
        ));
    }
    for (i, a) in maps.iter().enumerate() {
        for b in &maps[i + 1..] {
            let overlap = |x: u32, y: u32| {
                u64::from(x) < u64::from(y) + u64::from(b.count)
                    && u64::from(y) < u64::from(x) + u64::from(a.count)
            };
            if overlap(a.inside, b.inside) {
                return Err(format!(
                    "{kind}: ranges \"{a}\" and \"{b}\" overlap inside the container"
                ));
            }
            if overlap(a.outside, b.outside) {
                return Err(format!(
                    "{kind}: ranges \"{a}\" and \"{b}\" overlap outside the container"
                ));
            }
        }
    }
    Ok(())
}

/// The VM id of container id `id`, if the map has it.
pub fn to_outside(maps: &[IdMap], id: u32) -> Option<u32> {
    maps.iter()
        .find(|m| id >= m.inside && u64::from(id) < u64::from(m.inside) + u64::from(m.count))
        .map(|m| m.outside + (id - m.inside))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(s: &str) -> IdMap {
        IdMap::parse(s).unwrap()
    }

    #[test]
    fn overlapping_ranges_are_refused_like_the_kernel_does() {
        assert_eq!(check("uid_map", &[m("0 100000 65536")]), Ok(()));
        assert_eq!(
            check("uid_map", &[m("0 100000 1000"), m("1000 200000 10")]),
            Ok(())
        );
        assert_eq!(
            check("uid_map", &[m("0 100000 1000"), m("999 200000 10")]),
            Err("uid_map: ranges \"0 100000 1000\" and \"999 200000 10\" overlap inside the container".into())
        );
        assert_eq!(
            check("gid_map", &[m("0 100000 1000"), m("5000 100999 1")]),
            Err("gid_map: ranges \"0 100000 1000\" and \"5000 100999 1\" overlap outside the container".into())
        );
        assert_eq!(
            check("uid_map", &[]),
            Err("uid_map is empty: a user namespace needs at least one range".into())
        );
        let many: Vec<IdMap> = (0..341)
            .map(|i| m(&format!("{i} {} 1", 1000 + i)))
            .collect();
        assert_eq!(
            check("uid_map", &many),
            Err("uid_map has 341 ranges; the kernel accepts at most 340".into())
        );
    }

    #[test]
    fn ids_map_to_the_vm() {
        let maps = [m("0 100000 1000"), m("1000 5000 1")];
        assert_eq!(to_outside(&maps, 0), Some(100000));
        assert_eq!(to_outside(&maps, 999), Some(100999));
        assert_eq!(to_outside(&maps, 1000), Some(5000));
        assert_eq!(to_outside(&maps, 1001), None);
        assert_eq!(to_outside(&[m("0 4294967295 1")], 0), Some(u32::MAX));
    }
}
