//! The kernel modules of an image: the module tree the plan chose, the
//! closure of what the profile loads, its files in the tree.

use super::*;

/// Adds the `[modules]` closure; returns the names the init should load.
pub(super) fn add_modules(tree: &mut Tree, plan: &Plan) -> Result<Vec<String>, BuildError> {
    let m = &plan.modules;
    let mut names: Vec<String> = m.load.clone();
    if let Some(preset) = m.preset {
        names.extend(preset.modules().iter().map(|s| s.to_string()));
    }
    // What the init's root step will mount needs its driver in the image;
    // a built-in one is simply recorded as such by the closure.
    if let (Some(init), true) = (&plan.profile.init, m.tree.is_some()) {
        if init.root.mode == RootMode::Overlay {
            names.push("overlay".to_string());
        }
        if let Some(fstype) = &init.root.fstype {
            names.push(fstype.clone());
        }
    }
    if names.is_empty() {
        return Ok(Vec::new());
    }
    names.dedup();
    let dir = match &m.tree {
        None => return Err(BuildError::NoModuleTree),
        Some(ModuleTree::Path(p)) => p.clone(),
        Some(ModuleTree::Auto) => match &plan.auto_kernel {
            Some(k) => k.module_tree()?,
            None => return Err(BuildError::AutoKernelUnknown),
        },
    };
    let closure = kmod::resolve(&dir, &names)?;
    for f in kmod::image_files(&closure, m.compressed)? {
        tree.add(
            &f.path,
            Node::File(f.data.into()),
            Meta::root(f.mode & 0o7777),
            "kernel modules",
        )?;
    }
    let builtin = &closure.builtin;
    Ok(names.into_iter().filter(|n| !builtin.contains(n)).collect())
}
