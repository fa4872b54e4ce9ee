//! Offline-backup seal and verify on real filesystems: loop-mounted ext4 and vfat images
//! (issue 6 acceptance). Each test makes its own image, mounts it, and unmounts and
//! detaches it in a drop guard. Tests that need root, `mkfs` or `debugfs` print why and
//! return when those are missing.

use setten_agent::backup::{
    self, keygen, seal, verify, Change, Concurrency, Error, FileFinding, ManifestError, MediumName,
    Outcome, SampleFraction, SealOptions, SealReport, Status, VerifyMode, VerifyOptions,
    VerifyReport, CHUNK_SIZE,
};
use std::ffi::OsStr;
use std::num::NonZeroUsize;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const MIB: u64 = 1 << 20;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Fs {
    Ext4,
    Vfat,
    Btrfs,
}

/// A filesystem image mounted on a loop device; unmounted (and so detached: `mount -o
/// loop` sets autoclear) when dropped. A kernel without vfat mounts FAT images with
/// `fusefat` instead, which takes ASCII names only.
struct Medium {
    dir: tempfile::TempDir,
    img: PathBuf,
    mnt: PathBuf,
    fs: Fs,
    fuse: bool,
}

fn kernel_has(fs: &str) -> bool {
    std::fs::read_to_string("/proc/filesystems")
        .unwrap_or_default()
        .lines()
        .any(|l| l.split_whitespace().last() == Some(fs))
}

fn have(tool: &str) -> bool {
    ["/usr/sbin", "/sbin", "/usr/bin", "/bin"]
        .iter()
        .any(|d| Path::new(d).join(tool).exists())
}

fn run(cmd: &str, args: &[&OsStr]) -> bool {
    let out = Command::new(cmd).args(args).output();
    match out {
        Ok(o) if o.status.success() => true,
        Ok(o) => {
            eprintln!(
                "{cmd} {args:?}: {}",
                String::from_utf8_lossy(&o.stderr).trim()
            );
            false
        }
        Err(e) => {
            eprintln!("{cmd}: {e}");
            false
        }
    }
}

impl Medium {
    /// A fresh, mounted filesystem of `mib` MiB, or `None` (with the reason printed) when
    /// this machine cannot make one.
    fn new(fs: Fs, mib: u64) -> Option<Medium> {
        // /proc/self belongs to the effective uid.
        let uid = std::fs::metadata("/proc/self")
            .map(|m| m.uid())
            .unwrap_or(1);
        if uid != 0 {
            eprintln!("SKIP: loop mounts need root (uid {uid})");
            return None;
        }
        let mkfs = match fs {
            Fs::Ext4 => "mkfs.ext4",
            Fs::Vfat => "mkfs.vfat",
            Fs::Btrfs => "mkfs.btrfs",
        };
        if !have(mkfs) || !have("mount") || !have("umount") {
            eprintln!("SKIP: {mkfs}, mount or umount is not installed");
            return None;
        }
        let fuse = fs == Fs::Vfat && !kernel_has("vfat");
        if fuse && !have("fusefat") {
            eprintln!("SKIP: the kernel has no vfat and fusefat is not installed");
            return None;
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let img = dir.path().join("medium.img");
        let mnt = dir.path().join("mnt");
        std::fs::create_dir(&mnt).unwrap();
        std::fs::File::create(&img)
            .and_then(|f| f.set_len(mib * MIB))
            .unwrap();
        let made = match fs {
            Fs::Ext4 => run(
                "mkfs.ext4",
                &["-q".as_ref(), "-F".as_ref(), img.as_os_str()],
            ),
            Fs::Vfat => run("mkfs.vfat", &[img.as_os_str()]),
            Fs::Btrfs => run("mkfs.btrfs", &["-q".as_ref(), img.as_os_str()]),
        };
        assert!(made, "{mkfs} failed");
        let m = Medium {
            dir,
            img,
            mnt,
            fs,
            fuse,
        };
        if !m.mount() {
            eprintln!("SKIP: cannot loop-mount an image here");
            return None;
        }
        Some(m)
    }

    fn mount(&self) -> bool {
        if self.fuse {
            return run(
                "fusefat",
                &[
                    "-o".as_ref(),
                    "rw+".as_ref(),
                    self.img.as_os_str(),
                    self.mnt.as_os_str(),
                ],
            );
        }
        let opts = match self.fs {
            Fs::Ext4 => "loop,errors=continue",
            Fs::Vfat => "loop,utf8",
            Fs::Btrfs => "loop",
        };
        run(
            "mount",
            &[
                "-o".as_ref(),
                opts.as_ref(),
                self.img.as_os_str(),
                self.mnt.as_os_str(),
            ],
        )
    }

    fn is_mounted(&self) -> bool {
        let text = std::fs::read("/proc/self/mountinfo").unwrap_or_default();
        let me = self.mnt.as_os_str().as_bytes();
        text.split(|&b| b == b'\n')
            .any(|l| l.split(|&b| b == b' ').nth(4).is_some_and(|mp| mp == me))
    }

    fn umount(&self) {
        assert!(run("umount", &[self.mnt.as_os_str()]), "umount");
    }

    /// Detaches the mount from the tree at once; open files keep working until closed
    /// (what a desktop does when the medium is ejected while busy).
    fn umount_lazy(&self) {
        assert!(
            run("umount", &["-l".as_ref(), self.mnt.as_os_str()]),
            "umount -l"
        );
    }

    fn root(&self) -> &Path {
        &self.mnt
    }

    /// Names that are not ASCII can be created.
    fn unicode(&self) -> bool {
        !self.fuse
    }

    fn p(&self, rel: &str) -> PathBuf {
        self.mnt.join(rel)
    }
}

impl Drop for Medium {
    fn drop(&mut self) {
        for _ in 0..50 {
            if !self.is_mounted() {
                break;
            }
            if !run("umount", &[self.mnt.as_os_str()]) {
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        if self.is_mounted() {
            run("umount", &["-l".as_ref(), self.mnt.as_os_str()]);
        }
        let _ = &self.dir;
    }
}

/// The agent's state directory (off the medium) with a fresh key.
struct State {
    dir: tempfile::TempDir,
}

impl State {
    fn new() -> State {
        let dir = tempfile::tempdir().unwrap();
        keygen(&backup::default_key_file(dir.path())).unwrap();
        State { dir }
    }
    fn path(&self) -> &Path {
        self.dir.path()
    }
}

/// Deterministic incompressible bytes (xorshift64*).
fn noise(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut v = Vec::with_capacity(n + 8);
    while v.len() < n {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        v.extend_from_slice(&x.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes());
    }
    v.truncate(n);
    v
}

fn write(path: &Path, data: &[u8]) {
    if let Some(d) = path.parent() {
        std::fs::create_dir_all(d).unwrap();
    }
    std::fs::write(path, data).unwrap();
}

const BIG: &str = "backup/volume.vbk";
const BIG_SIZE: u64 = 2 * CHUNK_SIZE + MIB + 123; // three chunks

/// A small hospital-like tree: documents, a scan, a DICOM image without extension, a
/// backup container of three chunks, an empty file, and (ext4) a symlink, a FIFO and a
/// Shift_JIS file name that is not UTF-8.
fn populate(m: &Medium) {
    let text = "患者ID,検査日,結果\n00123,2026-01-05,異常なし\n".repeat(300);
    let csv = if m.unicode() {
        "docs/検査結果.csv"
    } else {
        "docs/kensa-kekka.csv"
    };
    write(&m.p(csv), text.as_bytes());
    let mut pdf = b"%PDF-1.7\n".to_vec();
    pdf.extend(
        "1 0 obj << /Type /Catalog >> endobj\n"
            .repeat(400)
            .as_bytes(),
    );
    write(&m.p("docs/report.pdf"), &pdf);
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    png.extend(noise(30_000, 1));
    write(&m.p("images/scan.png"), &png);
    let mut dcm = vec![0u8; 128];
    dcm.extend(b"DICM");
    dcm.extend(noise(50_000, 2));
    write(&m.p("dicom/IM0001"), &dcm);
    write(&m.p(BIG), &noise(BIG_SIZE as usize, 3));
    write(&m.p("empty"), b"");
    if m.fs != Fs::Vfat {
        std::os::unix::fs::symlink("docs/report.pdf", m.p("latest")).unwrap();
        assert!(run("mkfifo", &[m.p("pipe").as_os_str()]));
        // "東京.txt" in Shift_JIS.
        write(
            &m.mnt.join(OsStr::from_bytes(b"\x93\x8c\x8b\x9e.txt")),
            b"sjis name\n",
        );
    }
}

fn seal_opts(root: &Path, state: &State, medium: &str) -> SealOptions {
    SealOptions::new(root, MediumName::new(medium).unwrap(), state.path())
}

fn seal_ok(root: &Path, state: &State, medium: &str) -> SealReport {
    seal(&seal_opts(root, state, medium), &mut |_| {}).expect("seal")
}

fn verify_opts(root: &Path, state: &State, medium: &str) -> VerifyOptions {
    let mut o = VerifyOptions::new(root, state.path());
    o.medium = Some(MediumName::new(medium).unwrap());
    o
}

fn verify_ok(o: &VerifyOptions) -> VerifyReport {
    verify(o, &mut |_| {}).expect("verify")
}

fn only<'a>(r: &'a VerifyReport, path: &str) -> &'a FileFinding {
    let f: Vec<&FileFinding> = r.findings.iter().filter(|f| f.path == path).collect();
    assert_eq!(f.len(), 1, "one finding for {path}: {:#?}", r.findings);
    f[0]
}

fn flip_byte(path: &Path, at: u64) {
    use std::io::{Read, Seek, SeekFrom, Write};
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .unwrap();
    let mut b = [0u8];
    f.seek(SeekFrom::Start(at)).unwrap();
    f.read_exact(&mut b).unwrap();
    b[0] ^= 0x01;
    f.seek(SeekFrom::Start(at)).unwrap();
    f.write_all(&b).unwrap();
    f.sync_all().unwrap();
}

#[test]
fn ext4_untouched_then_one_byte_flipped() {
    untouched_then_one_byte_flipped(Fs::Ext4, 64);
}

/// btrfs reports another (anonymous) device number in `st_dev` than in mountinfo: the
/// storage is still found through the mount.
#[test]
fn btrfs_untouched_then_one_byte_flipped() {
    untouched_then_one_byte_flipped(Fs::Btrfs, 128);
}

fn untouched_then_one_byte_flipped(fs: Fs, mib: u64) {
    let Some(m) = Medium::new(fs, mib) else {
        return;
    };
    populate(&m);
    let state = State::new();
    let s = seal_ok(m.root(), &state, "RDX-01");
    assert_eq!(s.generation, 1);
    assert!(!s.flagged, "{:?}", s.score);
    assert_eq!(s.totals.files, 7);
    assert_eq!((s.totals.symlinks, s.totals.special), (1, 1));

    // The manifest keeps the Shift_JIS name as raw bytes.
    let text = std::fs::read_to_string(&s.manifest_path).unwrap();
    assert!(text.contains("\"path_hex\":\"938c8b9e2e747874\""), "{text}");

    let o = verify_opts(m.root(), &state, "RDX-01");
    let r = verify_ok(&o);
    assert_eq!(r.outcome, Outcome::Complete);
    assert_eq!(r.exit_code, 0, "{:#?}", r.findings);
    assert!(r.findings.is_empty());
    assert_eq!(r.counts.ok, r.counts.entries);
    assert_eq!(r.counts.files_content_checked, 7);
    assert_eq!(r.bytes_read, s.totals.bytes);
    assert!(r.checkpoint.is_none());
    // The loop device behind the mount was found, so the reader count follows its
    // rotational flag.
    let st = r.concurrency.storage.as_ref().expect("auto concurrency");
    assert!(st.block_dev.is_some(), "{st:?}");
    assert_eq!(
        st.source.as_deref().map(|s| s.starts_with("/dev/loop")),
        Some(true)
    );

    // One byte in the second chunk of the three-chunk file.
    flip_byte(&m.p(BIG), CHUNK_SIZE + MIB + 7);
    for conc in [
        Concurrency::Sequential,
        Concurrency::Threads(NonZeroUsize::new(2).unwrap()),
    ] {
        let r = verify_ok(&VerifyOptions {
            concurrency: conc,
            ..o.clone()
        });
        assert_eq!(r.exit_code, 1);
        assert_eq!(r.findings.len(), 1, "{:#?}", r.findings);
        assert_eq!(
            only(&r, BIG).status,
            Status::Modified {
                first_bad_offset: CHUNK_SIZE,
                change: Change::Content,
                expected_size: BIG_SIZE,
                actual_size: BIG_SIZE,
            }
        );
        assert_eq!(r.counts.modified, 1);
    }

    // The non-UTF-8 name is reported with its raw bytes.
    flip_byte(&m.mnt.join(OsStr::from_bytes(b"\x93\x8c\x8b\x9e.txt")), 0);
    let r = verify_ok(&o);
    let f = r
        .findings
        .iter()
        .find(|f| f.path_hex.as_deref() == Some("938c8b9e2e747874"))
        .expect("finding for the Shift_JIS name");
    assert!(matches!(
        f.status,
        Status::Modified {
            first_bad_offset: 0,
            ..
        }
    ));
    let json = serde_json::to_value(&r).unwrap();
    assert_eq!(json["exit_code"], 1);
    assert_eq!(json["outcome"], "complete");
}

#[test]
fn vfat_untouched_then_changed() {
    let Some(m) = Medium::new(Fs::Vfat, 64) else {
        return;
    };
    populate(&m);
    let state = State::new();
    let s = seal_ok(m.root(), &state, "USB-A");
    assert_eq!(s.totals.files, 6);
    assert_eq!(s.totals.symlinks + s.totals.special, 0);
    let o = verify_opts(m.root(), &state, "USB-A");
    let r = verify_ok(&o);
    assert_eq!((r.exit_code, r.findings.len()), (0, 0), "{:#?}", r.findings);

    flip_byte(&m.p(BIG), 2 * CHUNK_SIZE + 5);
    std::fs::remove_file(m.p("images/scan.png")).unwrap();
    write(&m.p("docs/new.txt"), b"new\n");
    let r = verify_ok(&o);
    assert_eq!(r.exit_code, 1);
    assert!(matches!(
        only(&r, BIG).status,
        Status::Modified { first_bad_offset, change: Change::Content, .. } if first_bad_offset == 2 * CHUNK_SIZE
    ));
    assert_eq!(only(&r, "images/scan.png").status, Status::Missing);
    assert_eq!(only(&r, "docs/new.txt").status, Status::Added { size: 4 });
    assert_eq!(r.findings.len(), 3);
}

#[test]
fn ext4_each_kind_of_difference_is_reported() {
    let Some(m) = Medium::new(Fs::Ext4, 64) else {
        return;
    };
    populate(&m);
    write(&m.p("docs/old-name.txt"), b"renamed later\n");
    write(&m.p("docs/grows.txt"), b"short\n");
    write(&m.p("docs/becomes-dir"), b"file\n");
    let state = State::new();
    seal_ok(m.root(), &state, "RDX-02");

    std::fs::remove_file(m.p("docs/report.pdf")).unwrap(); // deleted
    write(&m.p("images/added.png"), b"\x89PNG\r\n\x1a\n"); // added
    std::fs::rename(m.p("docs/old-name.txt"), m.p("docs/new-name.txt")).unwrap(); // renamed
    std::fs::File::options()
        .write(true)
        .open(m.p(BIG))
        .unwrap()
        .set_len(CHUNK_SIZE + 1000) // truncated inside the second chunk
        .unwrap();
    std::fs::OpenOptions::new()
        .append(true)
        .open(m.p("docs/grows.txt"))
        .and_then(|mut f| std::io::Write::write_all(&mut f, b"more\n"))
        .unwrap(); // extended
    std::fs::set_permissions(m.p("dicom/IM0001"), std::fs::Permissions::from_mode(0o000)).unwrap(); // permissions removed (root still reads it: content ok)
    std::fs::remove_file(m.p("docs/becomes-dir")).unwrap();
    std::fs::create_dir(m.p("docs/becomes-dir")).unwrap(); // type changed
    std::fs::remove_file(m.p("latest")).unwrap();
    std::os::unix::fs::symlink("/etc/passwd", m.p("latest")).unwrap(); // retargeted

    let r = verify_ok(&verify_opts(m.root(), &state, "RDX-02"));
    assert_eq!(r.exit_code, 1);
    assert_eq!(only(&r, "docs/report.pdf").status, Status::Missing);
    assert_eq!(
        only(&r, "images/added.png").status,
        Status::Added { size: 8 }
    );
    assert_eq!(only(&r, "docs/old-name.txt").status, Status::Missing);
    assert_eq!(
        only(&r, "docs/new-name.txt").status,
        Status::Added { size: 14 }
    );
    assert_eq!(
        only(&r, BIG).status,
        Status::Modified {
            first_bad_offset: CHUNK_SIZE,
            change: Change::Truncated,
            expected_size: BIG_SIZE,
            actual_size: CHUNK_SIZE + 1000,
        }
    );
    assert_eq!(
        only(&r, "docs/grows.txt").status,
        Status::Modified {
            first_bad_offset: 0,
            change: Change::Extended,
            expected_size: 6,
            actual_size: 11,
        }
    );
    let perm = only(&r, "dicom/IM0001");
    assert_eq!(perm.status, Status::ModeChanged);
    assert_eq!(perm.mode, Some(("0644".into(), "0000".into())));
    assert_eq!(
        only(&r, "docs/becomes-dir").status,
        Status::TypeChanged {
            expected: backup::manifest::EntryKind::File
        }
    );
    assert!(matches!(
        only(&r, "latest").status,
        Status::Modified {
            change: Change::Target,
            ..
        }
    ));
    let c = &r.counts;
    assert_eq!(
        (
            c.missing,
            c.added,
            c.modified,
            c.mode_changed,
            c.type_changed
        ),
        (2, 2, 3, 1, 1)
    );
    assert_eq!(r.findings.len(), 9);
    // The human table names each finding.
    let table = r.to_table(100);
    assert!(table.contains("DIFFERENCES"), "{table}");
    assert!(table.contains("missing       docs/report.pdf"), "{table}");
    assert!(
        table.contains("mode_changed  dicom/IM0001   [mode 0644 → 0000]"),
        "{table}"
    );
    assert!(
        table.contains(&format!("truncated from offset {CHUNK_SIZE}")),
        "{table}"
    );
    assert_eq!(r.to_table(2).matches('\n').count(), 4 + 2 + 1, "{table}");

    // Truncated exactly at a chunk boundary: the first missing chunk is the bad one.
    std::fs::File::options()
        .write(true)
        .open(m.p(BIG))
        .unwrap()
        .set_len(CHUNK_SIZE)
        .unwrap();
    let r = verify_ok(&verify_opts(m.root(), &state, "RDX-02"));
    assert!(matches!(
        only(&r, BIG).status,
        Status::Modified { first_bad_offset, change: Change::Truncated, .. } if first_bad_offset == CHUNK_SIZE
    ));
}

/// A file whose inode is corrupt on disk cannot be read (ext4 answers EUCLEAN), and a
/// corrupt directory makes everything under it unreadable: each is reported with the OS
/// error, not as missing.
#[test]
fn ext4_unreadable_entries_carry_the_os_error() {
    if !have("debugfs") {
        eprintln!("SKIP: debugfs is not installed");
        return;
    }
    let Some(m) = Medium::new(Fs::Ext4, 64) else {
        return;
    };
    populate(&m);
    write(&m.p("ward/a.txt"), b"a\n");
    write(&m.p("ward/b.txt"), b"b\n");
    let state = State::new();
    seal_ok(m.root(), &state, "RDX-03");
    m.umount();
    // Point the first extent of each inode far beyond the end of the filesystem
    // (i_block[5] is ee_start_lo of the first extent after the 12-byte header).
    for target in ["/docs/report.pdf", "/ward"] {
        assert!(run(
            "debugfs",
            &[
                "-w".as_ref(),
                "-R".as_ref(),
                format!("sif {target} block[5] 0x7ffffff").as_ref(),
                m.img.as_os_str(),
            ]
        ));
    }
    assert!(m.mount());
    let r = verify_ok(&verify_opts(m.root(), &state, "RDX-03"));
    assert_eq!(r.exit_code, 1);
    for p in ["docs/report.pdf", "ward/a.txt", "ward/b.txt"] {
        match &only(&r, p).status {
            Status::Unreadable { error } => {
                assert!(error.contains("Structure needs cleaning"), "{p}: {error}")
            }
            other => panic!("{p}: {other:?}"),
        }
    }
    assert_eq!(r.counts.missing, 0);
}

/// Random bytes behind new extensions and a ransom note in every directory: refused
/// without force; with force the generation is sealed flagged and every verify report
/// says so.
#[test]
fn mass_encryption_is_flagged_at_seal() {
    let Some(m) = Medium::new(Fs::Ext4, 64) else {
        return;
    };
    let state = State::new();
    for i in 0..30 {
        let mut pdf = b"%PDF-1.7\n".to_vec();
        pdf.extend(format!("({i}) Tj ET\n").repeat(1000).as_bytes());
        write(&m.p(&format!("records/{:02}/chart-{i}.pdf", i % 3)), &pdf);
        let csv = format!("{i},検査,正常\n").repeat(500);
        write(
            &m.p(&format!("records/{:02}/lab-{i}.csv", i % 3)),
            csv.as_bytes(),
        );
    }
    let g1 = seal_ok(m.root(), &state, "NAS-SNAP");
    assert!(!g1.flagged);

    // "Encrypt": every file replaced by random bytes and renamed; a note per directory.
    for d in 0..3 {
        let dir = m.p(&format!("records/{d:02}"));
        let names: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        for (k, p) in names.iter().enumerate() {
            let len = std::fs::metadata(p).unwrap().len() as usize;
            let mut enc = p.clone().into_os_string();
            enc.push(".lockbit");
            write(
                Path::new(&enc),
                &noise(len.max(8192), 100 + k as u64 + d * 1000),
            );
            std::fs::remove_file(p).unwrap();
        }
        write(
            &dir.join("Restore-My-Files.txt"),
            b"All your files are encrypted.\n",
        );
    }
    let err = seal(&seal_opts(m.root(), &state, "NAS-SNAP"), &mut |_| {}).unwrap_err();
    let Error::Suspicious { score } = &err else {
        panic!("{err}");
    };
    let rules: Vec<&str> = score.reasons.iter().map(|r| r.rule.as_str()).collect();
    for want in ["type_mismatch", "ransom_note", "extension_churn"] {
        assert!(rules.contains(&want), "{want} in {rules:?}");
    }
    assert_eq!(score.ransom_notes.len(), 3);
    assert_eq!(err.exit_code(), 2);
    assert!(err.to_string().contains("ransom note"), "{err}");
    // Nothing was written: the newest generation is still 1.
    let medium = MediumName::new("NAS-SNAP").unwrap();
    assert_eq!(backup::latest_manifest(state.path(), &medium).unwrap().0, 1);

    let forced = seal(
        &SealOptions {
            force: true,
            ..seal_opts(m.root(), &state, "NAS-SNAP")
        },
        &mut |_| {},
    )
    .unwrap();
    assert!(forced.flagged);
    assert_eq!(forced.generation, 2);
    let text = std::fs::read_to_string(&forced.manifest_path).unwrap();
    assert!(text.contains("\"flagged\":true"));

    let r = verify_ok(&verify_opts(m.root(), &state, "NAS-SNAP"));
    assert_eq!(r.exit_code, 0);
    assert!(r.manifest.flagged);
    assert_eq!(r.manifest.generation, 2);
    assert!(r
        .manifest
        .flag_reasons
        .iter()
        .any(|x| x.rule == "ransom_note"));

    // Sealing an already encrypted tree as the first generation is caught too.
    let fresh = State::new();
    let err = seal(&seal_opts(m.root(), &fresh, "NAS-SNAP"), &mut |_| {}).unwrap_err();
    assert!(matches!(err, Error::Suspicious { .. }), "{err}");
}

#[test]
fn edited_or_foreign_manifests_are_refused() {
    let Some(m) = Medium::new(Fs::Ext4, 64) else {
        return;
    };
    populate(&m);
    let state = State::new();
    let s = seal(
        &SealOptions {
            copy_to_medium: true,
            ..seal_opts(m.root(), &state, "RDX-04")
        },
        &mut |_| {},
    )
    .unwrap();
    let copy = m.p(".setten/manifest.json");
    assert_eq!(s.copies, std::slice::from_ref(&copy));
    // The copy on the medium is not part of the tree.
    let mut o = VerifyOptions::new(m.root(), state.path());
    o.manifest = Some(copy.clone());
    assert_eq!(verify_ok(&o).exit_code, 0);

    let expect =
        |o: &VerifyOptions, want: &dyn Fn(&ManifestError) -> bool| match verify(o, &mut |_| {}) {
            Err(e @ Error::Manifest { .. }) => {
                let Error::Manifest { source, .. } = &e else {
                    unreachable!()
                };
                assert!(want(source), "{e}");
                assert_eq!(e.exit_code(), 2);
            }
            other => panic!("{other:?}"),
        };

    // Hand-edited: a size changed on the medium copy.
    let text = std::fs::read_to_string(&copy).unwrap();
    let edited = text.replacen("\"size\":0,", "\"size\":1,", 1);
    assert_ne!(edited, text);
    std::fs::write(&copy, &edited).unwrap();
    expect(&o, &|e| *e == ManifestError::Tampered);

    // Signed with another key.
    let other = tempfile::tempdir().unwrap();
    keygen(&other.path().join("k")).unwrap();
    let o2 = VerifyOptions {
        manifest: Some(s.manifest_path.clone()),
        key_file: other.path().join("k"),
        ..o.clone()
    };
    expect(&o2, &|e| matches!(e, ManifestError::OtherKey { .. }));

    // Not a manifest at all.
    std::fs::write(&copy, b"{\"hello\":1}").unwrap();
    expect(&o, &|e| matches!(e, ManifestError::Syntax { .. }));

    // Without a manifest given: the copy on the medium names the medium, and the agent's
    // store (at least as new) wins over it.
    std::fs::write(&copy, &text).unwrap();
    let mut o3 = VerifyOptions::new(m.root(), state.path());
    let r = verify_ok(&o3);
    assert_eq!((r.manifest.source, r.exit_code), ("state", 0));

    // Root missing: could not verify.
    o3.root = m.p("no-such-dir");
    let e = verify(&o3, &mut |_| {}).unwrap_err();
    assert!(matches!(e, Error::RootUnavailable { .. }), "{e}");
    assert_eq!(e.exit_code(), 2);

    // The key must not live on the medium.
    std::fs::copy(backup::default_key_file(state.path()), m.p("backup.key")).unwrap();
    let e = seal(
        &SealOptions {
            key_file: m.p("backup.key"),
            ..seal_opts(m.root(), &state, "RDX-04")
        },
        &mut |_| {},
    )
    .unwrap_err();
    assert!(matches!(e, Error::KeyOnMedium { .. }), "{e}");
}

/// The medium is unmounted (lazily, as when it is pulled out while busy) during a slowed
/// verify: the run says interrupted, keeps its checkpoint, and the next run resumes from
/// it and finishes.
#[test]
fn unmount_mid_verify_is_interrupted_and_resumes() {
    let Some(m) = Medium::new(Fs::Ext4, 96) else {
        return;
    };
    for i in 0..24 {
        write(
            &m.p(&format!("set/part-{i:02}.vbk")),
            &noise(2 * MIB as usize, i),
        );
    }
    let state = State::new();
    let s = seal_ok(m.root(), &state, "RDX-05");
    let total = s.totals.bytes;

    let done = Arc::new(AtomicU64::new(0));
    let mut o = verify_opts(m.root(), &state, "RDX-05");
    o.concurrency = Concurrency::Sequential;
    o.max_read_rate = Some(8 * MIB);
    let handle = {
        let o = o.clone();
        let done = done.clone();
        std::thread::spawn(move || verify(&o, &mut |p| done.store(p.bytes_done, Ordering::Relaxed)))
    };
    // Wait past one checkpoint interval and a few files, then pull the medium.
    let start = Instant::now();
    while done.load(Ordering::Relaxed) < 20 * MIB || start.elapsed() < Duration::from_secs(3) {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "verify made no progress"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    m.umount_lazy();
    let r = handle.join().unwrap().expect("verify ran");
    let Outcome::Interrupted { reason } = &r.outcome else {
        panic!("expected interrupted: {:?}", r.outcome);
    };
    assert!(reason.contains("went away"), "{reason}");
    assert_eq!(r.exit_code, 2);
    assert!(r.bytes_read < total);
    let cp = r.checkpoint.clone().expect("checkpoint kept");
    assert!(cp.exists());
    assert_eq!(r.counts.missing, 0, "no false 'missing': {:#?}", r.findings);

    // Plug it back in; the lazily detached mount goes once the last file is closed.
    let t = Instant::now();
    while !m.mount() {
        assert!(t.elapsed() < Duration::from_secs(20), "remount");
        std::thread::sleep(Duration::from_millis(200));
    }
    o.max_read_rate = None;
    let r2 = verify_ok(&o);
    assert_eq!(r2.outcome, Outcome::Complete);
    assert_eq!(r2.exit_code, 0, "{:#?}", r2.findings);
    assert!(r2.resumed);
    assert!(r2.bytes_resumed >= 16 * MIB, "resumed {}", r2.bytes_resumed);
    assert!(
        r2.bytes_read + r2.bytes_resumed >= total && r2.bytes_read < total,
        "read {} + resumed {} of {total}",
        r2.bytes_read,
        r2.bytes_resumed
    );
    assert!(!cp.exists(), "checkpoint removed after completion");
    // The next run starts over.
    let r3 = verify_ok(&o);
    assert!(!r3.resumed);
    assert_eq!(r3.bytes_read, total);
}

/// Rolling runs with a budget cover every chunk over successive runs, and a change is
/// found by the run that reaches it.
#[test]
fn rolling_runs_cover_every_chunk() {
    let Some(m) = Medium::new(Fs::Ext4, 96) else {
        return;
    };
    for i in 0..5 {
        write(
            &m.p(&format!("gen/disk-{i}.vbk")),
            &noise((8 * MIB) as usize, 50 + i),
        );
    }
    let state = State::new();
    let s = seal_ok(m.root(), &state, "RDX-06");
    flip_byte(&m.p("gen/disk-4.vbk"), 5 * MIB);
    let mut o = verify_opts(m.root(), &state, "RDX-06");
    o.mode = VerifyMode::Rolling {
        max_bytes: Some(12 * MIB),
        max_duration: None,
    };
    let mut covered = 0;
    let mut runs = 0;
    loop {
        runs += 1;
        assert!(runs <= 6, "rolling never completes");
        let r = verify_ok(&o);
        covered += r.bytes_read;
        let info = r.rolling.clone().expect("rolling info");
        assert_eq!(info.pass, 1);
        if info.pass_completed {
            assert_eq!(r.outcome, Outcome::Complete);
            assert_eq!(r.exit_code, 1);
            assert!(matches!(
                only(&r, "gen/disk-4.vbk").status,
                Status::Modified { first_bad_offset, .. } if first_bad_offset == CHUNK_SIZE
            ));
            break;
        }
        assert!(matches!(r.outcome, Outcome::Partial { .. }));
        assert!(r.bytes_read >= 12 * MIB && r.bytes_read <= 12 * MIB + 64 * MIB);
    }
    assert_eq!(covered, s.totals.bytes);
    assert!(runs >= 2);
    // The next run starts pass 2 from the beginning.
    let r = verify_ok(&o);
    assert_eq!(r.rolling.unwrap().pass, 2);
}

/// `sample` reads about the asked share of chunks, the same chunks for the same seed.
#[test]
fn sample_reads_a_share_of_chunks() {
    let Some(m) = Medium::new(Fs::Ext4, 192) else {
        return;
    };
    for i in 0..4 {
        write(
            &m.p(&format!("img/{i}.vbk")),
            &noise((32 * MIB) as usize, 70 + i),
        );
    }
    let state = State::new();
    let s = seal_ok(m.root(), &state, "RDX-07");
    let mut o = verify_opts(m.root(), &state, "RDX-07");
    o.mode = VerifyMode::Sample {
        fraction: "25%".parse::<SampleFraction>().unwrap(),
        seed: Some(42),
    };
    let a = verify_ok(&o);
    let b = verify_ok(&o);
    assert_eq!(a.exit_code, 0);
    assert_eq!(a.bytes_read, b.bytes_read);
    assert_eq!(a.sample_seed, Some(42));
    let share = a.bytes_read as f64 / s.totals.bytes as f64;
    assert!((0.08..=0.45).contains(&share), "share {share}");
    // A full sample is a full read.
    o.mode = VerifyMode::Sample {
        fraction: SampleFraction::new(1.0).unwrap(),
        seed: None,
    };
    assert_eq!(verify_ok(&o).bytes_read, s.totals.bytes);
}

// ---- media watching (`setten-agent run`'s backup watcher) ----------------------------

use setten_agent::backup::watch::{self, FolderConfig, MediumConfig, WatchConfig};
use setten_agent::findings::Body;
use std::sync::atomic::AtomicBool;

/// The findings the watcher emitted, until `want` has seen what it needs or `limit`.
fn collect_until(
    rx: &std::sync::mpsc::Receiver<Body>,
    seen: &mut Vec<serde_json::Map<String, serde_json::Value>>,
    limit: Duration,
    want: impl Fn(&[serde_json::Map<String, serde_json::Value>]) -> bool,
) {
    let start = Instant::now();
    while !want(seen) {
        assert!(
            start.elapsed() < limit,
            "not within {limit:?}; the watcher said: {seen:#?}"
        );
        if let Ok(Body::Backup(m)) = rx.recv_timeout(Duration::from_millis(100)) {
            seen.push(m);
        }
    }
}

fn has(
    seen: &[serde_json::Map<String, serde_json::Value>],
    event: &str,
    key: &str,
    v: &str,
) -> bool {
    seen.iter().any(|m| {
        m["event"] == event && (key.is_empty() || m.get(key).and_then(|x| x.as_str()) == Some(v))
    })
}

fn medium_config(name: &str) -> MediumConfig {
    MediumConfig {
        name: MediumName::new(name).unwrap(),
        uuid: None,
        label: None,
        subdir: PathBuf::new(),
        verify: Some(VerifyMode::Full),
        window: None,
        max_days: None,
    }
}

fn blkid(img: &Path, tag: &str) -> String {
    let out = Command::new("blkid")
        .args(["-s", tag, "-o", "value"])
        .arg(img)
        .output()
        .expect("blkid");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// A medium identified by its filesystem UUID: mounted → `mount` and a verification;
/// left connected past its window → `over_window`; changed and unmounted → `unmount`
/// with the time connected; mounted again → `differences` naming the file.
#[test]
fn watcher_follows_a_medium_through_mount_verify_window_and_unmount() {
    let Some(m) = Medium::new(Fs::Ext4, 64) else {
        return;
    };
    if !have("blkid") {
        eprintln!("SKIP: blkid is not installed");
        return;
    }
    let state = State::new();
    populate(&m);
    seal_ok(m.root(), &state, "RDX-1");
    m.umount();
    let uuid = blkid(&m.img, "UUID");
    assert_eq!(uuid.len(), 36, "{uuid}");

    let mut mc = medium_config("RDX-1");
    mc.uuid = Some(uuid.to_uppercase());
    mc.window = Some(Duration::from_secs(1));
    let cfg = WatchConfig {
        media: vec![mc],
        folders: vec![],
        key_file: backup::default_key_file(state.path()),
        state_dir: state.path().to_owned(),
        stale_check: Duration::from_secs(3600),
    };
    let (emit, rx) = watch::collecting();
    let stop = Arc::new(AtomicBool::new(false));
    let h = watch::spawn(cfg, emit, stop.clone()).unwrap();
    let mut seen = Vec::new();
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        seen.is_empty() && rx.try_recv().is_err(),
        "nothing is mounted yet"
    );

    assert!(m.mount());
    collect_until(&rx, &mut seen, Duration::from_secs(60), |s| {
        has(s, "mount", "", "") && has(s, "verify", "", "") && has(s, "over_window", "", "")
    });
    let mount = seen.iter().find(|x| x["event"] == "mount").unwrap();
    assert_eq!(mount["medium"], "RDX-1");
    assert_eq!(mount["fs_uuid"].as_str().unwrap().to_lowercase(), uuid);
    assert_eq!(mount["mount_point"], m.mnt.to_str().unwrap());
    let v = seen.iter().find(|x| x["event"] == "verify").unwrap();
    assert_eq!(v["result"], "ok", "{v:#?}");
    assert_eq!(v["mode"], "full");
    assert_eq!(v["generation"], 1);
    assert!(v["counts"]["files"].as_u64().unwrap() >= 6);
    let w = seen.iter().find(|x| x["event"] == "over_window").unwrap();
    assert!(w["connected_seconds"].as_f64().unwrap() > 1.0);
    assert_eq!(w["window_seconds"], 1.0);
    // Once per mount.
    std::thread::sleep(Duration::from_millis(600));
    while let Ok(Body::Backup(x)) = rx.try_recv() {
        seen.push(x);
    }
    assert_eq!(
        seen.iter().filter(|x| x["event"] == "over_window").count(),
        1
    );

    flip_byte(&m.p("docs/report.pdf"), 100);
    m.umount();
    collect_until(&rx, &mut seen, Duration::from_secs(30), |s| {
        has(s, "unmount", "", "")
    });
    let u = seen.iter().find(|x| x["event"] == "unmount").unwrap();
    assert!(u["connected_seconds"].as_f64().unwrap() >= 1.0, "{u:#?}");

    assert!(m.mount());
    collect_until(&rx, &mut seen, Duration::from_secs(60), |s| {
        has(s, "verify", "result", "differences")
    });
    let d = seen
        .iter()
        .find(|x| x["event"] == "verify" && x["result"] == "differences")
        .unwrap();
    assert_eq!(d["counts"]["modified"], 1);
    assert_eq!(d["problems"][0]["path"], "docs/report.pdf");
    assert_eq!(d["problems"][0]["status"], "modified");

    stop.store(true, Ordering::Relaxed);
    h.join().unwrap();
    // The watcher remembers the last good verification across restarts.
    let st: serde_json::Value =
        serde_json::from_slice(&std::fs::read(state.path().join(watch::STATE_FILE)).unwrap())
            .unwrap();
    assert!(st["RDX-1"]["last_verified_us"].as_u64().unwrap() > 0);
    assert_eq!(st["RDX-1"]["last_result"], "differences");
}

/// A vfat medium configured by name only is recognised by the manifest copy the seal
/// left on it; a medium never verified within `max_days` is reported stale, once.
#[test]
fn watcher_recognises_a_medium_by_its_manifest_copy_and_reports_staleness() {
    let Some(m) = Medium::new(Fs::Vfat, 64) else {
        return;
    };
    let state = State::new();
    write(&m.p("daily/backup.bak"), &noise(200_000, 9));
    let mut o = seal_opts(&m.p("daily"), &state, "USB-7");
    o.copy_to_medium = true;
    seal(&o, &mut |_| {}).unwrap();
    m.umount();

    let mut usb = medium_config("USB-7");
    usb.subdir = PathBuf::from("daily");
    let mut never = medium_config("RDX-NEVER");
    never.uuid = Some("0000-0000".into());
    never.max_days = Some(1.0 / 86_400.0); // one second
    let cfg = WatchConfig {
        media: vec![usb, never],
        folders: vec![],
        key_file: backup::default_key_file(state.path()),
        state_dir: state.path().to_owned(),
        stale_check: Duration::from_millis(200),
    };
    let (emit, rx) = watch::collecting();
    let stop = Arc::new(AtomicBool::new(false));
    let h = watch::spawn(cfg, emit, stop.clone()).unwrap();
    assert!(m.mount());
    let mut seen = Vec::new();
    collect_until(&rx, &mut seen, Duration::from_secs(60), |s| {
        has(s, "verify", "medium", "USB-7") && has(s, "stale", "medium", "RDX-NEVER")
    });
    let v = seen.iter().find(|x| x["event"] == "verify").unwrap();
    assert_eq!(v["result"], "ok", "{v:#?}");
    let s = seen.iter().find(|x| x["event"] == "stale").unwrap();
    assert!(s["last_verified_us"].is_null());
    assert!(!seen
        .iter()
        .any(|x| x["event"] == "stale" && x["medium"] == "USB-7"));
    std::thread::sleep(Duration::from_secs(1));
    while let Ok(Body::Backup(x)) = rx.try_recv() {
        seen.push(x);
    }
    assert_eq!(
        seen.iter().filter(|x| x["event"] == "stale").count(),
        1,
        "once a day"
    );
    stop.store(true, Ordering::Relaxed);
    h.join().unwrap();
}

/// A drop folder: a finished set is sealed once the folder is quiet; a set that looks
/// encrypted is reported flagged and not sealed.
#[test]
fn watcher_seals_settled_drop_folders_and_refuses_encrypted_sets() {
    let state = State::new();
    let drop_dir = tempfile::tempdir().unwrap();
    for i in 0..20 {
        let csv = format!("{i},検査,正常\n").repeat(500);
        write(
            &drop_dir.path().join(format!("set/lab-{i}.csv")),
            csv.as_bytes(),
        );
    }
    let cfg = WatchConfig {
        media: vec![],
        folders: vec![FolderConfig {
            name: MediumName::new("NAS-DROP").unwrap(),
            path: drop_dir.path().to_owned(),
            settle: Duration::from_millis(300),
        }],
        key_file: backup::default_key_file(state.path()),
        state_dir: state.path().to_owned(),
        stale_check: Duration::from_secs(3600),
    };
    let (emit, rx) = watch::collecting();
    let stop = Arc::new(AtomicBool::new(false));
    let h = watch::spawn(cfg, emit, stop.clone()).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    write(&drop_dir.path().join("set/done.marker"), b"ok\n");
    let mut seen = Vec::new();
    collect_until(&rx, &mut seen, Duration::from_secs(30), |s| {
        has(s, "seal", "", "")
    });
    let s = &seen[0];
    assert_eq!(s["generation"], 1);
    assert_eq!(s["flagged"], false);
    assert_eq!(s["files"], 21);

    // Every file replaced by random bytes under a new extension, and a note.
    for i in 0..20 {
        let p = drop_dir.path().join(format!("set/lab-{i}.csv"));
        write(
            &drop_dir.path().join(format!("set/lab-{i}.csv.locked")),
            &noise(8192, i),
        );
        std::fs::remove_file(p).unwrap();
    }
    write(&drop_dir.path().join("set/README-DECRYPT.txt"), b"pay\n");
    collect_until(&rx, &mut seen, Duration::from_secs(30), |s| {
        s.iter()
            .any(|x| x["event"] == "seal" && x["flagged"] == true)
    });
    let f = seen.iter().find(|x| x["flagged"] == true).unwrap();
    assert_eq!(f["forced"], false);
    assert!(f.get("generation").is_none(), "not sealed: {f:#?}");
    assert!(!f["flag_reasons"].as_array().unwrap().is_empty());
    assert_eq!(
        backup::latest_manifest(state.path(), &MediumName::new("NAS-DROP").unwrap())
            .unwrap()
            .0,
        1
    );
    stop.store(true, Ordering::Relaxed);
    h.join().unwrap();
}

/// The command line records each seal and verification in the spool for the collector.
#[test]
fn command_line_results_are_spooled_for_the_collector() {
    let state = tempfile::tempdir().unwrap();
    let tree = tempfile::tempdir().unwrap();
    write(
        &tree.path().join("a/records.csv"),
        "1,2,3\n".repeat(100).as_bytes(),
    );
    let agent = |args: &[&OsStr]| {
        Command::new(env!("CARGO_BIN_EXE_setten-agent"))
            .args(args)
            .env("SETTEN_STATE_DIR", state.path())
            .output()
            .unwrap()
    };
    let key = backup::default_key_file(state.path());
    assert!(
        agent(&["backup".as_ref(), "keygen".as_ref(), key.as_os_str()])
            .status
            .success()
    );
    let out = agent(&[
        "backup".as_ref(),
        "seal".as_ref(),
        tree.path().as_os_str(),
        "--medium".as_ref(),
        "CLI-1".as_ref(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    write(&tree.path().join("a/records.csv"), b"changed\n");
    let out = agent(&[
        "backup".as_ref(),
        "verify".as_ref(),
        tree.path().as_os_str(),
        "--medium".as_ref(),
        "CLI-1".as_ref(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("recorded for the collector"), "{err}");
    let mut spool =
        setten_agent::ship::spool::Spool::open(&state.path().join("spool.db"), 1 << 30).unwrap();
    let got: Vec<serde_json::Map<String, serde_json::Value>> = spool
        .peek(100)
        .unwrap()
        .into_iter()
        .filter_map(|f| match f.body {
            Body::Backup(m) => Some(m),
            _ => None,
        })
        .collect();
    assert_eq!(got.len(), 2, "{got:#?}");
    assert_eq!(got[0]["event"], "seal");
    assert_eq!(got[0]["generation"], 1);
    assert_eq!(got[1]["event"], "verify");
    assert_eq!(got[1]["result"], "differences");
    assert_eq!(got[1]["medium"], "CLI-1");
    assert_eq!(got[1]["problems"][0]["path"], "a/records.csv");
}

/// The same through the long-running agent: `setten-agent run` (capturing on loopback
/// here) with a medium in its configuration records the timeline and the window finding
/// in its spool for the collector, and stops cleanly on SIGTERM.
#[test]
fn the_running_agent_spools_the_media_timeline() {
    let Some(m) = Medium::new(Fs::Ext4, 64) else {
        return;
    };
    let state = State::new();
    populate(&m);
    let mut o = seal_opts(m.root(), &state, "RDX-RUN");
    o.copy_to_medium = true;
    seal(&o, &mut |_| {}).unwrap();
    m.umount();
    let config = state.path().join("agent.toml");
    std::fs::write(
        &config,
        format!(
            "[capture]\ninterfaces = [\"lo\"]\nfilter = \"udp port 9\"\n\n[inventory]\nstate_dir = \"{0}\"\n\n[[backup.media]]\nname = \"RDX-RUN\"\nverify = \"sample\"\nfraction = 0.5\nwindow = \"1s\"\n",
            state.path().display()
        ),
    )
    .unwrap();
    let agent = Command::new(env!("CARGO_BIN_EXE_setten-agent"))
        .args(["run", "--config"])
        .arg(&config)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(2));
    assert!(m.mount());
    std::thread::sleep(Duration::from_secs(3));
    m.umount();
    std::thread::sleep(Duration::from_secs(1));
    assert!(run(
        "kill",
        &["-TERM".as_ref(), agent.id().to_string().as_ref()]
    ));
    let out = agent.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    let mut spool =
        setten_agent::ship::spool::Spool::open(&state.path().join("spool.db"), 1 << 30).unwrap();
    let events: Vec<String> = spool
        .peek(1000)
        .unwrap()
        .into_iter()
        .filter_map(|f| match f.body {
            Body::Backup(m) if m["medium"] == "RDX-RUN" => {
                Some(m["event"].as_str().unwrap().to_owned())
            }
            _ => None,
        })
        .collect();
    for want in ["mount", "verify", "over_window", "unmount"] {
        assert!(
            events.iter().any(|e| e == want),
            "{want} in {events:?}\n{err}"
        );
    }
    assert!(
        events.iter().position(|e| e == "mount") < events.iter().position(|e| e == "unmount"),
        "{events:?}"
    );
    assert!(err.contains("backup medium RDX-RUN mounted on"), "{err}");
}
