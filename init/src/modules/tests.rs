//! Loader tests: a modules directory and a fake sysfs in a temp dir, and
//! an insmod that records its calls.

use super::*;
use nix::errno::Errno;
use std::fs;
use std::sync::{Arc, Mutex};

type Calls = Arc<Mutex<Vec<String>>>;

/// A modules dir and a fake sysfs: virtio_pci (needs virtio_ring, which
/// needs virtio) drives a PCI device; when it loads, the device is bound
/// and a virtio block device appears that wants virtio_blk. A bound
/// host bridge and a CPU (no driver, no module) are also there. `bad`
/// fails with ENOEXEC.
fn setup(dir: &Path) -> Paths {
    let m = dir.join("lib/modules/6.1.0");
    fs::create_dir_all(&m).unwrap();
    fs::write(
        m.join("modules.dep"),
        "kernel/virtio.ko:\n\
         kernel/virtio_ring.ko: kernel/virtio.ko\n\
         kernel/virtio_pci.ko: kernel/virtio_ring.ko kernel/virtio.ko\n\
         kernel/virtio_blk.ko: kernel/virtio_ring.ko kernel/virtio.ko\n\
         kernel/bad.ko:\nkernel/needs-bad.ko: kernel/bad.ko\n\
         kernel/crc.ko.xz:\nkernel/ext.ko:\n",
    )
    .unwrap();
    fs::write(
        m.join("modules.alias"),
        "alias pci:v00001AF4d*sv*sd*bc*sc*i* virtio_pci\nalias virtio:d00000002v* virtio_blk\nalias crypto-crc crc\n",
    )
    .unwrap();
    fs::write(
        m.join("modules.softdep"),
        "softdep ext pre: crypto-crc nosuch\n",
    )
    .unwrap();
    fs::write(m.join("modules.builtin"), "kernel/fs/ext4/ext4.ko\n").unwrap();
    let pci = dir.join("sys/bus/pci/devices/0000:00:02.0");
    fs::create_dir_all(&pci).unwrap();
    fs::write(
        pci.join("modalias"),
        "pci:v00001AF4d00001001sv00001AF4sd00000002bc01sc00i00\n",
    )
    .unwrap();
    let bridge = dir.join("sys/bus/pci/devices/0000:00:00.0");
    fs::create_dir_all(&bridge).unwrap();
    // Its modalias would load crc if the bound device were not skipped.
    fs::write(bridge.join("modalias"), "crypto-crc\n").unwrap();
    std::os::unix::fs::symlink("../../drivers/x", bridge.join("driver")).unwrap();
    let cpu = dir.join("sys/bus/cpu/devices/cpu0");
    fs::create_dir_all(&cpu).unwrap();
    fs::write(cpu.join("modalias"), "cpu:type:x86\n").unwrap();
    fs::create_dir_all(dir.join("sys/module/ext4")).unwrap();
    Paths {
        modules: m,
        bus: dir.join("sys/bus"),
        sys_module: dir.join("sys/module"),
    }
}

/// An insmod that records file names and plugs in the virtio device
/// when virtio_pci loads.
fn fake(dir: &Path, calls: Calls) -> impl Fn(&Path, &str) -> Result<(), Errno> + Sync {
    let pci = dir.join("sys/bus/pci/devices/0000:00:02.0");
    let dev = dir.join("sys/bus/virtio/devices/virtio0");
    move |p: &Path, params: &str| {
        let f = p.file_name().unwrap().to_string_lossy().into_owned();
        let call = if params.is_empty() {
            f.clone()
        } else {
            format!("{f} {params}")
        };
        let n = {
            let mut c = calls.lock().unwrap();
            c.push(call);
            c.len()
        };
        match f.as_str() {
            "bad.ko" => Err(Errno::ENOEXEC),
            "virtio.ko" if n > 1 => Err(Errno::EEXIST),
            "virtio_pci.ko" => {
                std::os::unix::fs::symlink("../../drivers/virtio-pci", pci.join("driver")).unwrap();
                fs::create_dir_all(&dev).unwrap();
                fs::write(dev.join("modalias"), "virtio:d00000002v00001AF4\n").unwrap();
                Ok(())
            }
            _ => Ok(()),
        }
    }
}

#[test]
fn coldplug_follows_devices_that_drivers_create() {
    let tmp = tempfile::tempdir().unwrap();
    let paths = setup(tmp.path());
    let calls: Calls = Arc::default();
    let mut l = Loader::open(paths, fake(tmp.path(), calls.clone())).unwrap();
    assert_eq!(l.coldplug(), 4);
    assert_eq!(
        *calls.lock().unwrap(),
        [
            "virtio.ko",
            "virtio_ring.ko",
            "virtio_pci.ko",
            "virtio_blk.ko"
        ]
    );
    assert_eq!(
        l.names,
        ["virtio", "virtio_ring", "virtio_pci", "virtio_blk"]
    );
    // Nothing new: a second run loads nothing and calls nothing.
    assert_eq!(l.coldplug(), 0);
    assert_eq!(calls.lock().unwrap().len(), 4);
}

#[test]
fn each_load_gets_its_module_parameters_dependencies_and_coldplug_alike() {
    let tmp = tempfile::tempdir().unwrap();
    let paths = setup(tmp.path());
    let calls: Calls = Arc::default();
    let mut l = Loader::open(paths, fake(tmp.path(), calls.clone())).unwrap();
    let configured = BTreeMap::from([("virtio-blk".to_string(), "queue_depth=64".to_string())]);
    l.options = options::join(
        &configured,
        &options::from_cmdline(
            "virtio_ring.x=1 virtio_blk.num_request_queues=2 virtio-pci.force_legacy=1 quiet",
        ),
    );
    // virtio_ring is a dependency, virtio_pci and virtio_blk come from
    // coldplug: each gets exactly its own parameters.
    assert_eq!(l.coldplug(), 4);
    assert_eq!(
        *calls.lock().unwrap(),
        [
            "virtio.ko",
            "virtio_ring.ko x=1",
            "virtio_pci.ko force_legacy=1",
            "virtio_blk.ko queue_depth=64 num_request_queues=2"
        ]
    );
}

#[test]
fn independent_modules_of_one_level_load_at_the_same_time() {
    let tmp = tempfile::tempdir().unwrap();
    let paths = setup(tmp.path());
    // virtio_pci and virtio_blk both need only virtio_ring and virtio:
    // each waits (at most 5 s) for the other to be inside insmod too.
    let inside = Arc::new((Mutex::new(0usize), std::sync::Condvar::new()));
    let met = Arc::new(Mutex::new(Vec::new()));
    let (i, m) = (inside.clone(), met.clone());
    let insmod = move |p: &Path, _: &str| {
        let f = p.file_name().unwrap().to_string_lossy().into_owned();
        if f == "virtio_pci.ko" || f == "virtio_blk.ko" {
            let (n, cv) = &*i;
            let mut n = n.lock().unwrap();
            *n += 1;
            cv.notify_all();
            let (n, _) = cv
                .wait_timeout_while(n, Duration::from_secs(5), |n| *n < 2)
                .unwrap();
            m.lock().unwrap().push((f, *n));
        }
        Ok(())
    };
    let mut l = Loader::open(paths, insmod).unwrap();
    assert!(l.request_all(&[
        ("virtio_pci".into(), "configuration".into()),
        ("virtio-blk".into(), "configuration".into()),
    ]));
    let mut met = met.lock().unwrap().clone();
    met.sort();
    assert_eq!(
        met,
        [
            ("virtio_blk.ko".to_string(), 2),
            ("virtio_pci.ko".to_string(), 2)
        ]
    );
    // Recorded in plan order, whatever order they finished in.
    assert_eq!(
        l.names,
        ["virtio", "virtio_ring", "virtio_pci", "virtio_blk"]
    );
}

#[test]
fn failures_are_per_module_and_softdeps_are_optional() {
    let tmp = tempfile::tempdir().unwrap();
    let paths = setup(tmp.path());
    let calls: Calls = Arc::default();
    let mut l = Loader::open(paths, fake(tmp.path(), calls.clone())).unwrap();
    assert!(!l.request("needs_bad", "configuration"));
    assert_eq!(
        l.state.get("bad"),
        Some(&Err(Failure::Insmod(Errno::ENOEXEC)))
    );
    assert_eq!(
        l.state.get("needs_bad"),
        Some(&Err(Failure::Dependency("bad".into())))
    );
    assert!(l.request("ext", "configuration"));
    assert!(l.request("ext4", "configuration"), "built in");
    assert!(l.request("virtio", "configuration"));
    assert!(!l.request("nosuch", "configuration"));
    // crc comes before ext (softdep pre), compressed files keep their name.
    assert_eq!(
        *calls.lock().unwrap(),
        ["bad.ko", "crc.ko.xz", "ext.ko", "virtio.ko"]
    );
    assert_eq!(l.names, ["crc", "ext", "virtio"]);
    // The second virtio.ko call answered EEXIST: still loaded, no new call.
    assert!(l.request("virtio-ring", "configuration"));
    assert_eq!(calls.lock().unwrap().last().unwrap(), "virtio_ring.ko");
}

#[test]
fn missing_modules_dir_is_an_error_naming_it() {
    let tmp = tempfile::tempdir().unwrap();
    let paths = Paths {
        modules: tmp.path().join("none"),
        bus: tmp.path().into(),
        sys_module: tmp.path().into(),
    };
    let err = Loader::open(paths, |_: &Path, _: &str| Ok(()))
        .err()
        .unwrap();
    assert_eq!(
        err,
        format!(
            "read {}/none/modules.dep: No such file or directory (os error 2)",
            tmp.path().display()
        )
    );
}
