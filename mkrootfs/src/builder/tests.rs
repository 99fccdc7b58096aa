use super::*;
use crate::profile;

/// An image with its own `/init` script, so no mkrootfs init binary is needed.
fn scripted(name: &str) -> ImageBuilder {
    ImageBuilder::new(name)
        .file_with_mode("/init", "#!/bin/sh\necho hi\n", "0755")
        .own_init("/init")
        .file("/etc/motd", "hello\n")
        .dir("/var/lib/app", "0700")
        .symlink("/etc/issue", "motd")
        .compression(Compression::Gzip)
        .mtime(0)
}

const SCRIPTED_TOML: &str = r##"
[image]
compression = "gzip"
init = "/init"
[[files]]
dest = "/init"
content = "#!/bin/sh\necho hi\n"
mode = "0755"
[[files]]
dest = "/etc/motd"
content = "hello\n"
mode = "0644"
[[dirs]]
path = "/var/lib/app"
mode = "0700"
[[symlinks]]
path = "/etc/issue"
target = "motd"
"##;

#[test]
fn builder_and_toml_profile_give_the_same_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let toml = dir.path().join("scripted.toml");
    std::fs::write(&toml, SCRIPTED_TOML).unwrap();
    let p = profile::load_path(&toml).unwrap();
    let from_toml = dir.path().join("toml.cpio.gz");
    let opts = BuildOptions {
        output: Some(from_toml.clone()),
        mtime: Some(0),
        ..Default::default()
    };
    build::build(&p, &opts).unwrap();

    let from_builder = dir.path().join("builder.cpio.gz");
    let built = scripted("scripted").build(&from_builder).unwrap();
    assert_eq!(built.path.as_deref(), Some(from_builder.as_path()));
    assert_eq!(
        std::fs::read(&from_builder).unwrap(),
        std::fs::read(&from_toml).unwrap()
    );

    let mut bytes = Vec::new();
    let written = scripted("scripted").write_to(&mut bytes).unwrap();
    assert_eq!(bytes, std::fs::read(&from_toml).unwrap());
    assert_eq!(written.path, None);
    assert_eq!(written.compressed, bytes.len() as u64);
    assert_eq!(written.entries, built.entries);
}

#[test]
fn relative_image_path_is_rejected_as_in_a_profile() {
    let err = scripted("demo").file("etc/x", "").profile().unwrap_err();
    assert_eq!(
        err.to_string(),
        "image demo: file etc/x: image path \"etc/x\" must be absolute"
    );
    let err = scripted("demo")
        .symlink("/a/../../b", "x")
        .profile()
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "image demo: symlink /a/../../b: image path \"/a/../../b\" escapes the image with `..`"
    );
}

#[test]
fn bad_mode_is_rejected_as_in_a_profile() {
    let err = scripted("demo").dir("/d", "0779").profile().unwrap_err();
    assert_eq!(
        err.to_string(),
        "image demo: dir /d: invalid mode \"0779\": expected 1 to 4 octal digits such as \"0755\""
    );
}

#[test]
fn the_first_mistake_is_the_one_reported() {
    let err = scripted("demo")
        .file("rel", "")
        .dir("/d", "9")
        .profile()
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "image demo: file rel: image path \"rel\" must be absolute"
    );
}

#[test]
fn init_configuration_is_validated_as_in_a_profile() {
    let err = ImageBuilder::new("demo")
        .with_init(|i| i.hostname = Some("box".into()))
        .profile()
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "image demo: init configuration: init: no services and no root.exec: the init would have nothing to run"
    );
    let err = ImageBuilder::new("demo")
        .command(Vec::<String>::new())
        .profile()
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "image demo: init configuration: init.services[0]: argv must name a program"
    );
}

#[test]
fn command_takes_the_profile_defaults() {
    let p = ImageBuilder::new("demo")
        .command(["/bin/app", "--serve"])
        .profile()
        .unwrap();
    let from_toml: InitConfig =
        toml::from_str("[[services]]\nargv = [\"/bin/app\", \"--serve\"]\n").unwrap();
    assert_eq!(p.init, Some(from_toml));
}

#[test]
fn build_errors_name_the_image_and_keep_the_cause() {
    let err = ImageBuilder::new("demo")
        .binary("/nonexistent/prog")
        .own_init("/nonexistent/prog")
        .build(std::env::temp_dir().join("mkrootfs-builder-never.cpio"))
        .unwrap_err();
    assert_eq!(err.to_string(), "build image demo");
    let cause = std::error::Error::source(&err).unwrap().to_string();
    assert!(cause.contains("/nonexistent/prog"), "{cause}");
}

#[test]
fn a_disk_format_is_built_to_a_file_not_streamed() {
    let b = ImageBuilder::new("disk")
        .command(["/bin/true"])
        .format(crate::fsimage::Format::Erofs);
    let mut chain = String::new();
    let mut cur: Option<&dyn std::error::Error> = Some(&b.write_to(Vec::new()).unwrap_err());
    while let Some(c) = cur {
        chain.push_str(&c.to_string());
        cur = c.source();
    }
    assert!(chain.contains("use build(), not write_to()"), "{chain}");
}
