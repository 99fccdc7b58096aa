//! The kernel modules of an image: the closure of the modules the plan
//! asks for, from the tree it resolved, its files in the tree.

use super::*;

/// Adds the `[modules]` closure; returns the names the init should load.
pub(super) fn add_modules(tree: &mut Tree, plan: &Plan) -> Result<Vec<String>, BuildError> {
    let m = &plan.modules;
    let Some(dir) = &m.tree else {
        return Ok(Vec::new());
    };
    let names = m.names.clone();
    let closure = kmod::resolve(dir, &names)?;
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
