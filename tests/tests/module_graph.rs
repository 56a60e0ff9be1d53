//! The module graph of `gateway-core` (`core/src`) has no cycles, level by
//! level.
//!
//! # Nodes
//!
//! The core's modules, discovered by parsing `core/src/lib.rs` and following
//! its `mod name;` declarations to `name.rs` / `name/mod.rs` (nested, as rustc
//! does; `#[path]` is honoured), plus inline `mod name { … }` blocks.
//!
//! Skipped (test code, not part of the library's structure):
//! - modules declared under `#[cfg(test)]` (e.g. `#[cfg(test)] mod
//!   gateway_tests;`, whose file is then never read), inline
//!   `#[cfg(test)] mod tests { … }` blocks,
//! - and any other item (fn, impl, use, impl/trait item, field, variant,
//!   statement, match arm) with a `#[cfg(test)]` attribute (also
//!   `cfg(all(test, …))`).
//!
//! Included, and marked as *test support*: modules behind
//! `#[cfg(any(test, feature = "test-util"))]` (`testing`). They are compiled
//! into the library that other crates use (with `test-util`), so a cycle
//! through them is a real cycle of that build.
//!
//! # Edges
//!
//! From the module whose code contains a path to the module the path names:
//! - every path in a `use` tree (re-exports, `pub use`, count as edges from
//!   the re-exporting module) and every ordinary path (types, expressions,
//!   patterns, trait bounds, macro names: syn's `Visit` for `Path`) that
//!   starts with `crate::`, `super::` or `self::` (resolved relative to the
//!   module that contains it);
//! - `crate::`, `$crate::`, `super::` and `self::` token sequences inside macro
//!   invocations and `macro_rules!` bodies (`tracing::info!(…)`, `json!(…)`,
//!   `format!(…)`), which syn leaves unparsed, and inside attribute arguments;
//! - bare paths of two or more segments (`usage::Usage`) whose first segment
//!   is a child module, a name imported by a module-level `use`, or a name
//!   brought in by a module-level glob import (`use super::*`). Bare
//!   single-segment paths (`Usage`) are skipped: the `use` that brought the
//!   name in is already an edge, and a local variable must not become one.
//!
//! A path `crate::a::b::Item` points at the deepest existing module on that
//! path (`a::b` if that is a module, else `a`). When the next segment is a
//! name that module imports (`crate::Gateway` with `pub use
//! gateway::Gateway;` in `lib.rs`), resolution continues through that
//! import, so a re-export does not hide where the item lives. Paths that
//! name other crates (`std::…`, `serde_json::…`) are not edges.
//!
//! # Check (levelised)
//!
//! For each edge X → Y, let L be their lowest common ancestor. If X is an
//! ancestor of Y or Y of X, the edge is allowed and ignored (a parent may use
//! its children and a child its ancestors). Otherwise it adds an edge A → B
//! between the children A and B of L that contain X and Y. For every module
//! L, the graph among L's children must be acyclic. On failure the message
//! lists, per level, the modules of each strongly connected component and a
//! shortest cycle through each of its edges (`crate: ai -> quota -> ai`),
//! with, for every hop, an example `file:line` and the path that created it.
//!
//! `MODULE_GRAPH_PRINT=1 cargo test -p gateway-tests --test module_graph --
//! --nocapture` also prints the sibling graph: every child of `crate`, and
//! every other level that has edges, as `crate: ai -> auth, body, config`.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt::Write as _;
use std::path::Path;

use proc_macro2::{Spacing, Span, TokenStream, TokenTree};
use syn::ext::IdentExt as _;
use syn::punctuated::Punctuated;
use syn::visit::{self, Visit};
use syn::{Attribute, Item, Meta, Token, UseTree};

/// A module path below the crate root; `[]` is the root (`crate`).
type ModPath = Vec<String>;

/// Source files keyed by their path relative to the crate's `src/`, with `/`
/// separators (`lib.rs`, `ai/mod.rs`).
type Sources = BTreeMap<String, String>;

fn show(module: &[String]) -> String {
    if module.is_empty() {
        "crate".to_owned()
    } else {
        format!("crate::{}", module.join("::"))
    }
}

#[derive(Debug, Default)]
struct Module {
    test_support: bool,
    children: BTreeSet<String>,
    /// Names bound by module-level `use` items, to the path as written
    /// (relative to this module).
    imports: BTreeMap<String, Vec<String>>,
    /// Module-level glob imports, as written.
    globs: Vec<Vec<String>>,
}

/// A path found in a module's code, as written.
#[derive(Debug)]
struct Reference {
    from: ModPath,
    /// With a function-local `use` already substituted.
    segments: Vec<String>,
    text: String,
    file: String,
    line: usize,
}

/// A resolved module dependency.
#[derive(Debug, Clone)]
struct Edge {
    from: ModPath,
    to: ModPath,
    file: String,
    line: usize,
    text: String,
}

#[derive(Debug, Default)]
struct Analysis {
    modules: BTreeMap<ModPath, Module>,
    references: Vec<Reference>,
    /// `mod x;` declarations skipped as `#[cfg(test)]`.
    skipped_test_modules: Vec<String>,
    errors: Vec<String>,
}

/// A module still to read: its path, file, the directory its `mod x;`
/// children live in, and whether it is test support.
struct Pending {
    module: ModPath,
    file: String,
    child_dir: String,
    test_support: bool,
}

fn analyse(sources: &Sources) -> Analysis {
    let mut analysis = Analysis::default();
    let mut queue = VecDeque::from([Pending {
        module: Vec::new(),
        file: "lib.rs".to_owned(),
        child_dir: String::new(),
        test_support: false,
    }]);
    while let Some(pending) = queue.pop_front() {
        let Some(source) = sources.get(&pending.file) else {
            analysis
                .errors
                .push(format!("{}: file not found", pending.file));
            continue;
        };
        let file = match syn::parse_file(source) {
            Ok(file) => file,
            Err(e) => {
                let at = e.span().start();
                analysis.errors.push(format!(
                    "{}:{}:{}: does not parse: {e}",
                    pending.file,
                    at.line,
                    at.column + 1
                ));
                continue;
            }
        };
        if let Some(parent) = pending.module.split_last().map(|(_, p)| p.to_vec()) {
            if cfg_of(&file.attrs).test_only {
                // `#![cfg(test)]` inside the module's own file.
                if let Some(m) = analysis.modules.get_mut(&parent) {
                    m.children
                        .remove(pending.module.last().map_or("", String::as_str));
                }
                analysis.skipped_test_modules.push(show(&pending.module));
                continue;
            }
        }
        analysis.modules.insert(
            pending.module.clone(),
            Module {
                test_support: pending.test_support,
                ..Module::default()
            },
        );
        let mut visitor = FileVisitor {
            analysis: &mut analysis,
            queue: &mut queue,
            sources,
            file: pending.file.clone(),
            module: pending.module,
            child_dir: pending.child_dir,
            test_support: pending.test_support,
            block_depth: 0,
            local_imports: Vec::new(),
        };
        visitor.visit_file(&file);
    }
    analysis
}

#[derive(Debug, Default)]
struct CfgKind {
    /// Compiled only under `cfg(test)`.
    test_only: bool,
    /// Mentions `test` without being test-only (`any(test, feature = …)`).
    test_support: bool,
}

fn cfg_of(attrs: &[Attribute]) -> CfgKind {
    let mut kind = CfgKind::default();
    for attr in attrs.iter().filter(|a| a.path().is_ident("cfg")) {
        let Ok(predicate) = attr.parse_args::<Meta>() else {
            continue;
        };
        if test_only(&predicate) {
            kind.test_only = true;
        } else if mentions_test(&predicate) {
            kind.test_support = true;
        }
    }
    kind
}

fn nested(meta: &Meta) -> Vec<Meta> {
    match meta {
        Meta::List(list) => list
            .parse_args_with(Punctuated::<Meta, Token![,]>::parse_terminated)
            .map(|p| p.into_iter().collect())
            .unwrap_or_default(),
        _ => Vec::new(),
    }
}

fn test_only(predicate: &Meta) -> bool {
    match predicate {
        Meta::Path(path) => path.is_ident("test"),
        Meta::List(list) if list.path.is_ident("all") => nested(predicate).iter().any(test_only),
        Meta::List(list) if list.path.is_ident("any") => {
            let options = nested(predicate);
            !options.is_empty() && options.iter().all(test_only)
        }
        _ => false,
    }
}

fn mentions_test(predicate: &Meta) -> bool {
    match predicate {
        Meta::Path(path) => path.is_ident("test"),
        Meta::List(list) if list.path.is_ident("all") || list.path.is_ident("any") => {
            nested(predicate).iter().any(mentions_test)
        }
        _ => false,
    }
}

fn item_attrs(item: &Item) -> &[Attribute] {
    match item {
        Item::Const(i) => &i.attrs,
        Item::Enum(i) => &i.attrs,
        Item::ExternCrate(i) => &i.attrs,
        Item::Fn(i) => &i.attrs,
        Item::ForeignMod(i) => &i.attrs,
        Item::Impl(i) => &i.attrs,
        Item::Macro(i) => &i.attrs,
        Item::Mod(i) => &i.attrs,
        Item::Static(i) => &i.attrs,
        Item::Struct(i) => &i.attrs,
        Item::Trait(i) => &i.attrs,
        Item::TraitAlias(i) => &i.attrs,
        Item::Type(i) => &i.attrs,
        Item::Union(i) => &i.attrs,
        Item::Use(i) => &i.attrs,
        _ => &[],
    }
}

fn impl_item_attrs(item: &syn::ImplItem) -> &[Attribute] {
    match item {
        syn::ImplItem::Const(i) => &i.attrs,
        syn::ImplItem::Fn(i) => &i.attrs,
        syn::ImplItem::Type(i) => &i.attrs,
        syn::ImplItem::Macro(i) => &i.attrs,
        _ => &[],
    }
}

fn trait_item_attrs(item: &syn::TraitItem) -> &[Attribute] {
    match item {
        syn::TraitItem::Const(i) => &i.attrs,
        syn::TraitItem::Fn(i) => &i.attrs,
        syn::TraitItem::Type(i) => &i.attrs,
        syn::TraitItem::Macro(i) => &i.attrs,
        _ => &[],
    }
}

fn line_of(span: Span) -> usize {
    span.start().line
}

fn ident(i: &syn::Ident) -> String {
    i.unraw().to_string()
}

struct FileVisitor<'a> {
    analysis: &'a mut Analysis,
    queue: &'a mut VecDeque<Pending>,
    sources: &'a Sources,
    file: String,
    /// The module the visited code is in (inline modules included).
    module: ModPath,
    /// Where `mod x;` declared in `module` finds `x.rs` / `x/mod.rs`.
    child_dir: String,
    test_support: bool,
    /// > 0 inside function bodies and other blocks: `use` there is local.
    block_depth: usize,
    /// Names bound by `use` items in the enclosing blocks, innermost last.
    local_imports: Vec<BTreeMap<String, Vec<String>>>,
}

impl FileVisitor<'_> {
    fn reference(&mut self, segments: Vec<String>, line: usize) {
        let first = segments.first().map(String::as_str);
        let rooted = matches!(first, Some("crate" | "$crate" | "super" | "self"));
        if rooted || segments.len() >= 2 {
            self.push_reference(segments, line);
        }
    }

    fn push_reference(&mut self, segments: Vec<String>, line: usize) {
        let text = segments.join("::");
        let local = segments.first().and_then(|first| {
            self.local_imports
                .iter()
                .rev()
                .find_map(|scope| scope.get(first))
        });
        let segments = match local {
            Some(path) => path.iter().chain(&segments[1..]).cloned().collect(),
            None => segments,
        };
        self.analysis.references.push(Reference {
            from: self.module.clone(),
            segments,
            text,
            file: self.file.clone(),
            line,
        });
    }

    fn current(&mut self) -> &mut Module {
        self.analysis
            .modules
            .get_mut(&self.module)
            .expect("the visited module is registered")
    }

    /// `crate :: a :: b` (also `$crate`, `super`, `self`) in unparsed tokens.
    fn scan_tokens(&mut self, tokens: TokenStream) {
        let tokens: Vec<TokenTree> = tokens.into_iter().collect();
        let path_sep = |at: usize| {
            matches!(tokens.get(at), Some(TokenTree::Punct(p)) if p.as_char() == ':' && p.spacing() == Spacing::Joint)
                && matches!(tokens.get(at + 1), Some(TokenTree::Punct(p)) if p.as_char() == ':')
        };
        let mut i = 0;
        while i < tokens.len() {
            match &tokens[i] {
                TokenTree::Group(group) => {
                    self.scan_tokens(group.stream());
                    i += 1;
                }
                TokenTree::Ident(start)
                    if (start == "crate" || start == "super" || start == "self")
                        && path_sep(i + 1)
                        && !(i >= 2 && path_sep(i - 2)) =>
                {
                    let mut segments = vec![start.to_string()];
                    let mut j = i + 1;
                    while path_sep(j) {
                        let Some(TokenTree::Ident(next)) = tokens.get(j + 2) else {
                            break;
                        };
                        segments.push(next.unraw().to_string());
                        j += 3;
                    }
                    let line = line_of(start.span());
                    self.reference(segments, line);
                    i = j;
                }
                _ => i += 1,
            }
        }
    }

    fn declare_module(&mut self, item: &syn::ItemMod, test_support: bool) {
        let name = ident(&item.ident);
        let mut module = self.module.clone();
        module.push(name.clone());
        let path_attr = item.attrs.iter().find_map(|a| match &a.meta {
            Meta::NameValue(nv) if nv.path.is_ident("path") => match &nv.value {
                syn::Expr::Lit(syn::ExprLit {
                    lit: syn::Lit::Str(s),
                    ..
                }) => Some(s.value()),
                _ => None,
            },
            _ => None,
        });
        let join = |dir: &str, rest: &str| {
            if dir.is_empty() {
                rest.to_owned()
            } else {
                format!("{dir}/{rest}")
            }
        };
        let (file, child_dir) = if let Some(path) = path_attr {
            // Relative to the declaring file's directory; the loaded file
            // behaves like a mod.rs file.
            let dir = self.file.rsplit_once('/').map_or("", |(d, _)| d);
            let file = join(dir, &path);
            let child_dir = file.rsplit_once('/').map_or("", |(d, _)| d).to_owned();
            (file, child_dir)
        } else {
            let flat = join(&self.child_dir, &format!("{name}.rs"));
            let nested = join(&self.child_dir, &format!("{name}/mod.rs"));
            let file = match (
                self.sources.contains_key(&flat),
                self.sources.contains_key(&nested),
            ) {
                (true, true) => {
                    self.analysis.errors.push(format!(
                        "{}:{}: both {flat} and {nested} exist for `mod {name};`",
                        self.file,
                        line_of(item.ident.span())
                    ));
                    return;
                }
                (false, true) => nested,
                (true, false) => flat,
                (false, false) => {
                    self.analysis.errors.push(format!(
                        "{}:{}: neither {flat} nor {nested} exists for `mod {name};`",
                        self.file,
                        line_of(item.ident.span())
                    ));
                    return;
                }
            };
            (file, join(&self.child_dir, &name))
        };
        self.current().children.insert(name);
        self.queue.push_back(Pending {
            module,
            file,
            child_dir,
            test_support,
        });
    }
}

/// Flattens a `use` tree into (path, bound name, is glob, line).
fn flatten_use(
    tree: &UseTree,
    prefix: &mut Vec<String>,
    out: &mut Vec<(Vec<String>, Option<String>, bool, usize)>,
) {
    match tree {
        UseTree::Path(p) => {
            prefix.push(ident(&p.ident));
            flatten_use(&p.tree, prefix, out);
            prefix.pop();
        }
        UseTree::Name(n) => {
            let line = line_of(n.ident.span());
            if n.ident == "self" {
                out.push((prefix.clone(), prefix.last().cloned(), false, line));
            } else {
                let mut path = prefix.clone();
                path.push(ident(&n.ident));
                out.push((path, Some(ident(&n.ident)), false, line));
            }
        }
        UseTree::Rename(r) => {
            let mut path = prefix.clone();
            if r.ident != "self" {
                path.push(ident(&r.ident));
            }
            let name = (r.rename != "_").then(|| ident(&r.rename));
            out.push((path, name, false, line_of(r.ident.span())));
        }
        UseTree::Glob(g) => out.push((prefix.clone(), None, true, line_of(g.star_token.span))),
        UseTree::Group(g) => {
            for tree in &g.items {
                flatten_use(tree, prefix, out);
            }
        }
    }
}

impl<'ast> Visit<'ast> for FileVisitor<'_> {
    fn visit_item(&mut self, item: &'ast Item) {
        let cfg = cfg_of(item_attrs(item));
        if cfg.test_only {
            if let Item::Mod(m) = item {
                if m.content.is_none() {
                    let mut module = self.module.clone();
                    module.push(ident(&m.ident));
                    self.analysis.skipped_test_modules.push(show(&module));
                }
            }
            return;
        }
        visit::visit_item(self, item);
    }

    fn visit_item_mod(&mut self, item: &'ast syn::ItemMod) {
        let test_support = self.test_support || cfg_of(&item.attrs).test_support;
        let Some((_, items)) = &item.content else {
            if self.block_depth == 0 {
                self.declare_module(item, test_support);
            }
            return;
        };
        if self.block_depth > 0 {
            // A module inside a function body: count its code as the
            // function's module.
            visit::visit_item_mod(self, item);
            return;
        }
        let name = ident(&item.ident);
        self.current().children.insert(name.clone());
        let mut module = self.module.clone();
        module.push(name.clone());
        self.analysis.modules.insert(
            module.clone(),
            Module {
                test_support,
                ..Module::default()
            },
        );
        let child_dir = if self.child_dir.is_empty() {
            name
        } else {
            format!("{}/{name}", self.child_dir)
        };
        let saved = (
            std::mem::replace(&mut self.module, module),
            std::mem::replace(&mut self.child_dir, child_dir),
            std::mem::replace(&mut self.test_support, test_support),
        );
        for item in items {
            self.visit_item(item);
        }
        (self.module, self.child_dir, self.test_support) = saved;
    }

    fn visit_item_use(&mut self, item: &'ast syn::ItemUse) {
        if item.leading_colon.is_some() {
            return; // `use ::other_crate::…`
        }
        let mut uses = Vec::new();
        flatten_use(&item.tree, &mut Vec::new(), &mut uses);
        for (path, name, glob, line) in uses {
            if self.block_depth == 0 {
                if glob {
                    self.current().globs.push(path.clone());
                } else if let Some(name) = name {
                    self.current().imports.entry(name).or_insert(path.clone());
                }
            }
            // A `use` of a single bare name (`use foo;`) is still a path.
            if path.len() == 1 && !glob {
                self.push_reference(path, line);
            } else {
                self.reference(path, line);
            }
        }
    }

    fn visit_path(&mut self, path: &'ast syn::Path) {
        if path.leading_colon.is_none() {
            let segments: Vec<String> = path.segments.iter().map(|s| ident(&s.ident)).collect();
            if let Some(first) = path.segments.first() {
                self.reference(segments, line_of(first.ident.span()));
            }
        }
        visit::visit_path(self, path);
    }

    fn visit_macro(&mut self, mac: &'ast syn::Macro) {
        visit::visit_macro(self, mac);
        self.scan_tokens(mac.tokens.clone());
    }

    fn visit_attribute(&mut self, attr: &'ast Attribute) {
        if let Meta::List(list) = &attr.meta {
            if !list.path.is_ident("cfg") && !list.path.is_ident("cfg_attr") {
                self.scan_tokens(list.tokens.clone());
            }
        }
    }

    fn visit_visibility(&mut self, _: &'ast syn::Visibility) {
        // `pub(crate)`, `pub(super)`, `pub(in crate::a)`: not dependencies.
    }

    fn visit_block(&mut self, block: &'ast syn::Block) {
        // A `use` in a block binds its names in the whole block (and shadows
        // the module's): `use jsonwebtoken::Algorithm;` in a function makes
        // its `Algorithm::ES256` no path into the crate.
        let mut scope = BTreeMap::new();
        for stmt in &block.stmts {
            if let syn::Stmt::Item(Item::Use(item)) = stmt {
                if item.leading_colon.is_none() && !cfg_of(&item.attrs).test_only {
                    let mut uses = Vec::new();
                    flatten_use(&item.tree, &mut Vec::new(), &mut uses);
                    for (path, name, glob, _) in uses {
                        if let (Some(name), false) = (name, glob) {
                            scope.insert(name, path);
                        }
                    }
                }
            }
        }
        self.local_imports.push(scope);
        self.block_depth += 1;
        visit::visit_block(self, block);
        self.block_depth -= 1;
        self.local_imports.pop();
    }

    fn visit_impl_item(&mut self, item: &'ast syn::ImplItem) {
        if !cfg_of(impl_item_attrs(item)).test_only {
            visit::visit_impl_item(self, item);
        }
    }

    fn visit_trait_item(&mut self, item: &'ast syn::TraitItem) {
        if !cfg_of(trait_item_attrs(item)).test_only {
            visit::visit_trait_item(self, item);
        }
    }

    fn visit_local(&mut self, local: &'ast syn::Local) {
        if !cfg_of(&local.attrs).test_only {
            visit::visit_local(self, local);
        }
    }

    fn visit_stmt_macro(&mut self, mac: &'ast syn::StmtMacro) {
        if !cfg_of(&mac.attrs).test_only {
            visit::visit_stmt_macro(self, mac);
        }
    }

    fn visit_field(&mut self, field: &'ast syn::Field) {
        if !cfg_of(&field.attrs).test_only {
            visit::visit_field(self, field);
        }
    }

    fn visit_variant(&mut self, variant: &'ast syn::Variant) {
        if !cfg_of(&variant.attrs).test_only {
            visit::visit_variant(self, variant);
        }
    }

    fn visit_arm(&mut self, arm: &'ast syn::Arm) {
        if !cfg_of(&arm.attrs).test_only {
            visit::visit_arm(self, arm);
        }
    }

    fn visit_field_value(&mut self, field: &'ast syn::FieldValue) {
        if !cfg_of(&field.attrs).test_only {
            visit::visit_field_value(self, field);
        }
    }
}

impl Analysis {
    /// The module a path names (see the crate docs), or `None` for paths
    /// into other crates and unknown names.
    fn resolve(&self, from: &[String], segments: &[String], depth: usize) -> Option<ModPath> {
        if depth > 16 || segments.is_empty() {
            return None;
        }
        let (start, rest): (ModPath, &[String]) = match segments[0].as_str() {
            "crate" | "$crate" => (Vec::new(), &segments[1..]),
            "self" => (from.to_vec(), &segments[1..]),
            "super" => {
                let mut module = from.to_vec();
                let ups = segments.iter().take_while(|s| *s == "super").count();
                for _ in 0..ups {
                    module.pop()?;
                }
                (module, &segments[ups..])
            }
            first => {
                let here = self.modules.get(from)?;
                if here.children.contains(first) {
                    (from.to_vec(), segments)
                } else if let Some(import) = here.imports.get(first) {
                    if import.len() == 1 && import[0] == first {
                        return None; // `use serde_json;`-style
                    }
                    let path: Vec<String> = import.iter().chain(&segments[1..]).cloned().collect();
                    return self.resolve(from, &path, depth + 1);
                } else {
                    // Through a glob: a child module or import of its target.
                    return here.globs.iter().find_map(|glob| {
                        let target = self.resolve(from, glob, depth + 1)?;
                        let module = self.modules.get(&target)?;
                        if module.children.contains(first) {
                            self.walk(target, segments, depth + 1)
                        } else if let Some(import) = module.imports.get(first) {
                            let path: Vec<String> =
                                import.iter().chain(&segments[1..]).cloned().collect();
                            self.resolve(&target, &path, depth + 1)
                        } else {
                            None
                        }
                    });
                }
            }
        };
        self.walk(start, rest, depth)
    }

    /// Descends from `module` along `rest` while the segments name child
    /// modules, following imports (re-exports) of the module reached.
    fn walk(&self, mut module: ModPath, rest: &[String], depth: usize) -> Option<ModPath> {
        for (i, segment) in rest.iter().enumerate() {
            let here = self.modules.get(&module)?;
            if here.children.contains(segment) {
                module.push(segment.clone());
                continue;
            }
            if let Some(import) = here.imports.get(segment) {
                let path: Vec<String> = import.iter().chain(&rest[i + 1..]).cloned().collect();
                if let Some(target) = self.resolve(&module, &path, depth + 1) {
                    return Some(target);
                }
            }
            break;
        }
        Some(module)
    }

    fn edges(&self) -> Vec<Edge> {
        let mut edges: Vec<Edge> = self
            .references
            .iter()
            .filter_map(|r| {
                let to = self.resolve(&r.from, &r.segments, 0)?;
                (to != r.from).then(|| Edge {
                    from: r.from.clone(),
                    to,
                    file: r.file.clone(),
                    line: r.line,
                    text: r.text.clone(),
                })
            })
            .collect();
        edges.sort_by(|a, b| (&a.file, a.line, &a.text).cmp(&(&b.file, b.line, &b.text)));
        edges
    }
}

/// A strongly connected component (two or more sibling modules) and, for
/// every edge inside it, a shortest cycle through that edge (`[a, b, …, a]`,
/// starting at its smallest module), shortest first.
#[derive(Debug)]
struct Component {
    modules: BTreeSet<String>,
    cycles: Vec<Vec<String>>,
}

/// The sibling graphs: for each module L, edges between L's children.
#[derive(Debug)]
struct Levels {
    /// Level → (child A, child B) → the edges that add A → B.
    levels: BTreeMap<ModPath, BTreeMap<(String, String), Vec<Edge>>>,
    root_children: BTreeSet<String>,
    test_support: Vec<String>,
    skipped: Vec<String>,
    /// Prefix for file names in messages (`core/src/`).
    prefix: String,
}

impl Levels {
    fn new(analysis: &Analysis, prefix: &str) -> Self {
        let mut levels: BTreeMap<ModPath, BTreeMap<(String, String), Vec<Edge>>> = BTreeMap::new();
        for edge in analysis.edges() {
            let common = edge
                .from
                .iter()
                .zip(&edge.to)
                .take_while(|(a, b)| a == b)
                .count();
            if common == edge.from.len() || common == edge.to.len() {
                continue; // ancestor / descendant
            }
            let key = (edge.from[common].clone(), edge.to[common].clone());
            levels
                .entry(edge.from[..common].to_vec())
                .or_default()
                .entry(key)
                .or_default()
                .push(edge);
        }
        let root_children = analysis
            .modules
            .get(&Vec::new())
            .map(|m| m.children.clone())
            .unwrap_or_default();
        let test_support = analysis
            .modules
            .iter()
            .filter(|(_, m)| m.test_support)
            .map(|(p, _)| show(p))
            .collect();
        Self {
            levels,
            root_children,
            test_support,
            skipped: analysis.skipped_test_modules.clone(),
            prefix: prefix.to_owned(),
        }
    }

    fn adjacency(&self, level: &ModPath) -> BTreeMap<String, BTreeSet<String>> {
        let mut adjacency: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (a, b) in self.levels.get(level).into_iter().flat_map(|l| l.keys()) {
            adjacency.entry(a.clone()).or_default().insert(b.clone());
        }
        adjacency
    }

    /// `crate: ai -> auth, body` lines: all of crate's children, then every
    /// deeper level with edges.
    fn render(&self) -> String {
        let mut out = String::new();
        if !self.test_support.is_empty() {
            let _ = writeln!(
                out,
                "# test support (cfg(any(test, …))), included: {}",
                self.test_support.join(", ")
            );
        }
        if !self.skipped.is_empty() {
            let _ = writeln!(
                out,
                "# cfg(test) modules, skipped: {}",
                self.skipped.join(", ")
            );
        }
        let root = self.adjacency(&Vec::new());
        for child in &self.root_children {
            let targets = root.get(child).map_or_else(
                || "(none)".to_owned(),
                |t| t.iter().cloned().collect::<Vec<_>>().join(", "),
            );
            let _ = writeln!(out, "crate: {child} -> {targets}");
        }
        for level in self.levels.keys().filter(|l| !l.is_empty()) {
            for (child, targets) in self.adjacency(level) {
                let targets = targets.into_iter().collect::<Vec<_>>().join(", ");
                let _ = writeln!(out, "{}: {child} -> {targets}", show(level));
            }
        }
        out
    }

    /// The levels whose sibling graph has cycles, with their components.
    fn cycles(&self) -> BTreeMap<ModPath, Vec<Component>> {
        let mut found = BTreeMap::new();
        for level in self.levels.keys() {
            let adjacency = self.adjacency(level);
            let reach = |from: &String| -> BTreeMap<String, String> {
                // Node → its predecessor on a shortest path from `from`.
                let mut seen = BTreeMap::new();
                let mut queue = VecDeque::from([from.clone()]);
                while let Some(node) = queue.pop_front() {
                    for next in adjacency.get(&node).into_iter().flatten() {
                        if !seen.contains_key(next) {
                            seen.insert(next.clone(), node.clone());
                            queue.push_back(next.clone());
                        }
                    }
                }
                seen
            };
            let nodes: BTreeSet<&String> = adjacency
                .iter()
                .flat_map(|(a, bs)| std::iter::once(a).chain(bs))
                .collect();
            let reachable: BTreeMap<&String, BTreeMap<String, String>> =
                nodes.iter().map(|n| (*n, reach(n))).collect();
            let mut components: Vec<BTreeSet<String>> = Vec::new();
            for node in &nodes {
                if components.iter().any(|c| c.contains(*node)) {
                    continue;
                }
                let component: BTreeSet<String> = nodes
                    .iter()
                    .filter(|m| {
                        reachable[*node].contains_key(**m) && reachable[**m].contains_key(*node)
                    })
                    .map(|m| (*m).clone())
                    .collect();
                if component.len() > 1 {
                    components.push(component);
                }
            }
            let mut found_here = Vec::new();
            for component in components {
                let mut cycles: BTreeSet<(usize, Vec<String>)> = BTreeSet::new();
                for (a, targets) in &adjacency {
                    for b in targets
                        .iter()
                        .filter(|b| component.contains(a) && component.contains(*b))
                    {
                        // Shortest path b ->…-> a, then close with a -> b.
                        let predecessors = &reachable[b];
                        let mut back = vec![a.clone()];
                        let mut at = a.clone();
                        while &at != b {
                            at = predecessors[&at].clone();
                            back.push(at.clone());
                        }
                        back.reverse(); // b … a
                        let mut cycle = vec![a.clone()];
                        cycle.extend(back);
                        cycle.pop(); // a, b, …, (a)
                        let start = (0..cycle.len()).min_by_key(|&i| &cycle[i]).unwrap_or(0);
                        cycle.rotate_left(start);
                        cycle.push(cycle[0].clone());
                        cycles.insert((cycle.len(), cycle));
                    }
                }
                found_here.push(Component {
                    modules: component,
                    cycles: cycles.into_iter().map(|(_, c)| c).collect(),
                });
            }
            if !found_here.is_empty() {
                found.insert(level.clone(), found_here);
            }
        }
        found
    }

    /// The failure message, or `None` when every level is acyclic.
    fn cycle_report(&self) -> Option<String> {
        let cycles = self.cycles();
        if cycles.is_empty() {
            return None;
        }
        let mut out = String::from(
            "the module graph of gateway-core has cycles between sibling modules \
             (a module may use its ancestors and descendants freely; see \
             tests/tests/module_graph.rs for the rules)\n",
        );
        for (level, components) in &cycles {
            let name = show(level);
            for component in components {
                let _ = writeln!(
                    out,
                    "\n{name}: {} modules depend on each other: {}",
                    component.modules.len(),
                    component
                        .modules
                        .iter()
                        .cloned()
                        .collect::<Vec<_>>()
                        .join(", ")
                );
                for cycle in &component.cycles {
                    let _ = writeln!(out, "  cycle {name}: {}", cycle.join(" -> "));
                    for hop in cycle.windows(2) {
                        let edges = &self.levels[level][&(hop[0].clone(), hop[1].clone())];
                        let example = &edges[0];
                        let more = match edges.len() {
                            1 => String::new(),
                            2 => " (+1 more reference)".to_owned(),
                            n => format!(" (+{} more references)", n - 1),
                        };
                        let _ = writeln!(
                            out,
                            "    {} -> {}: {}{}:{} `{}` ({} -> {}){more}",
                            hop[0],
                            hop[1],
                            self.prefix,
                            example.file,
                            example.line,
                            example.text,
                            show(&example.from),
                            show(&example.to),
                        );
                    }
                }
            }
        }
        Some(out)
    }
}

fn read_tree(root: &Path) -> Sources {
    fn walk(root: &Path, dir: &Path, out: &mut Sources) {
        let entries =
            std::fs::read_dir(dir).unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()));
        for entry in entries {
            let path = entry.expect("directory entry").path();
            if path.is_dir() {
                walk(root, &path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let relative = path.strip_prefix(root).expect("below the root");
                let key = relative
                    .components()
                    .map(|c| c.as_os_str().to_string_lossy().into_owned())
                    .collect::<Vec<_>>()
                    .join("/");
                let text = std::fs::read_to_string(&path)
                    .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
                out.insert(key, text);
            }
        }
    }
    let mut sources = Sources::new();
    walk(root, root, &mut sources);
    sources
}

#[test]
fn core_module_graph_has_no_cycles() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../core/src");
    let analysis = analyse(&read_tree(&root));
    assert!(
        analysis.errors.is_empty(),
        "reading core/src:\n{}",
        analysis.errors.join("\n")
    );
    let levels = Levels::new(&analysis, "core/src/");
    if std::env::var("MODULE_GRAPH_PRINT").is_ok_and(|v| v == "1") {
        println!(
            "module graph of gateway-core (core/src):\n{}",
            levels.render()
        );
    }
    if let Some(report) = levels.cycle_report() {
        panic!("{report}");
    }
}

// ---- the checker itself, on tiny in-memory crates --------------------------

fn crate_of(files: &[(&str, &str)]) -> (Analysis, Levels) {
    let sources: Sources = files
        .iter()
        .map(|(p, s)| ((*p).to_owned(), (*s).to_owned()))
        .collect();
    let analysis = analyse(&sources);
    assert!(analysis.errors.is_empty(), "{:?}", analysis.errors);
    let levels = Levels::new(&analysis, "src/");
    (analysis, levels)
}

/// `from -> to` for every resolved edge, with module paths as `a::b`.
fn edge_list(analysis: &Analysis) -> BTreeSet<String> {
    analysis
        .edges()
        .iter()
        .map(|e| format!("{} -> {}", show(&e.from), show(&e.to)))
        .collect()
}

#[test]
fn checker_passes_an_acyclic_tree() {
    let (analysis, levels) = crate_of(&[
        ("lib.rs", "pub mod a;\npub mod b;\npub mod c;\n"),
        (
            "a/mod.rs",
            "pub mod x;\nuse crate::b::B;\npub fn f() -> B { x::g() }\n",
        ),
        (
            "a/x.rs",
            "pub fn g() -> crate::b::B { crate::c::C::new() }\n",
        ),
        ("b.rs", "pub struct B;\nuse super::c::C;\n"),
        ("c.rs", "pub struct C;\n"),
    ]);
    let edges = edge_list(&analysis);
    for expected in [
        "crate::a -> crate::b",
        "crate::a -> crate::a::x",
        "crate::a::x -> crate::b",
        "crate::a::x -> crate::c",
        "crate::b -> crate::c",
    ] {
        assert!(edges.contains(expected), "{expected} missing: {edges:?}");
    }
    assert_eq!(levels.cycle_report(), None);
    assert!(
        levels
            .render()
            .contains("crate: a -> b, c\ncrate: b -> c\ncrate: c -> (none)\n"),
        "{}",
        levels.render()
    );
}

#[test]
fn checker_reports_a_two_module_cycle() {
    let (_, levels) = crate_of(&[
        ("lib.rs", "mod a;\nmod b;\nmod c;\n"),
        ("a.rs", "use crate::b::Thing;\n"),
        (
            "b.rs",
            "pub struct Thing;\n\nfn f() {\n    super::a::g();\n}\n",
        ),
        ("c.rs", "use crate::a;\n"),
    ]);
    let report = levels.cycle_report().expect("a cycle");
    assert!(
        report.contains("crate: 2 modules depend on each other: a, b"),
        "{report}"
    );
    assert!(report.contains("cycle crate: a -> b -> a"), "{report}");
    assert!(
        report.contains("a -> b: src/a.rs:1 `crate::b::Thing`"),
        "{report}"
    );
    assert!(
        report.contains("b -> a: src/b.rs:4 `super::a::g`"),
        "{report}"
    );
    assert!(!report.contains("c ->"), "{report}");
}

#[test]
fn checker_allows_parent_child_references_and_checks_nested_levels() {
    let (analysis, levels) = crate_of(&[
        ("lib.rs", "pub mod a;\npub struct Root;\n"),
        (
            "a/mod.rs",
            "pub mod x;\npub mod y;\npub use self::x::X;\npub struct A(crate::a::y::Y);\n",
        ),
        ("a/x.rs", "pub struct X(super::A, crate::Root);\n"),
        ("a/y.rs", "pub struct Y;\n"),
    ]);
    let edges = edge_list(&analysis);
    assert!(edges.contains("crate::a -> crate::a::x"), "{edges:?}");
    assert!(edges.contains("crate::a::x -> crate::a"), "{edges:?}");
    assert!(edges.contains("crate::a::x -> crate"), "{edges:?}");
    assert_eq!(levels.cycle_report(), None);

    // The same check one level down: x <-> y under a.
    let (_, levels) = crate_of(&[
        ("lib.rs", "pub mod a;\n"),
        ("a/mod.rs", "pub mod x;\npub mod y;\n"),
        ("a/x.rs", "pub fn f() { super::y::g() }\n"),
        ("a/y.rs", "pub fn g() { crate::a::x::f() }\n"),
    ]);
    let report = levels.cycle_report().expect("a nested cycle");
    assert!(report.contains("cycle crate::a: x -> y -> x"), "{report}");
    assert!(
        levels
            .render()
            .contains("crate::a: x -> y\ncrate::a: y -> x\n"),
        "{}",
        levels.render()
    );
}

#[test]
fn checker_sees_crate_paths_inside_macros() {
    let (_, levels) = crate_of(&[
        ("lib.rs", "mod a;\nmod b;\n"),
        ("a.rs", "use crate::b;\npub const K: &str = \"k\";\n"),
        (
            "b.rs",
            "fn f() -> String {\n    tracing::info!(key = %crate::a::K, \"x\");\n    \
             format!(\"{}\", json!({ \"k\": [crate :: a :: K] }))\n}\n",
        ),
    ]);
    let report = levels.cycle_report().expect("a cycle through the macro");
    assert!(report.contains("cycle crate: a -> b -> a"), "{report}");
    assert!(
        report.contains(
            "b -> a: src/b.rs:2 `crate::a::K` (crate::b -> crate::a) (+1 more reference)"
        ),
        "{report}"
    );
}

#[test]
fn checker_ignores_cfg_test_code_and_includes_test_support() {
    let (analysis, levels) = crate_of(&[
        (
            "lib.rs",
            "pub mod a;\npub mod b;\n#[cfg(test)]\nmod b_tests;\n\
             #[cfg(any(test, feature = \"test-util\"))]\npub mod testing;\n",
        ),
        ("a.rs", "use crate::b::B;\n"),
        (
            "b.rs",
            "pub struct B;\n#[cfg(test)]\nfn helper() { crate::a::f() }\n\
             impl B {\n    #[cfg(test)]\n    fn t(&self) { tracing::info!(\"{}\", crate::a::X); }\n}\n\
             #[cfg(test)]\nmod tests {\n    use crate::a::*;\n}\n",
        ),
        ("b_tests.rs", "use crate::a;\nuse crate::b;\n"),
        ("testing.rs", "use crate::a::A;\n"),
    ]);
    assert_eq!(levels.cycle_report(), None);
    assert!(!analysis.modules.contains_key(&vec!["b_tests".to_owned()]));
    assert!(!analysis
        .modules
        .contains_key(&vec!["b".to_owned(), "tests".to_owned()]));
    assert!(analysis.modules[&vec!["testing".to_owned()]].test_support);
    let edges = edge_list(&analysis);
    assert_eq!(
        edges,
        BTreeSet::from([
            "crate::a -> crate::b".to_owned(),
            "crate::testing -> crate::a".to_owned()
        ])
    );
    assert!(
        levels.render().contains("crate::b_tests"),
        "{}",
        levels.render()
    );
}

#[test]
fn checker_follows_re_exports_and_globs() {
    let (analysis, _) = crate_of(&[
        (
            "lib.rs",
            "pub mod a;\npub mod b;\npub mod c;\npub mod d;\npub use b::inner::Thing;\n",
        ),
        (
            "a/mod.rs",
            "pub mod p;\npub mod q;\npub fn f() -> crate::Thing { todo() }\n",
        ),
        ("a/p.rs", "use super::*;\nfn g() { q::h(); }\n"),
        ("a/q.rs", "pub fn h() {}\n"),
        ("b/mod.rs", "pub mod inner;\n"),
        ("b/inner.rs", "pub struct Thing;\n"),
        ("c.rs", "use crate::Thing as T;\nfn k(t: T::Assoc) {}\n"),
        (
            "d.rs",
            "use crate::a::Flag;\nfn k() {\n    let _ = Flag::On;\n    use other::Flag;\n}\n\
             fn m() {\n    use crate::b::inner as i;\n    i::Thing::new();\n}\n",
        ),
    ]);
    let edges = edge_list(&analysis);
    for expected in [
        "crate::a -> crate::b::inner",
        "crate::a::p -> crate::a::q",
        "crate::c -> crate::b::inner",
    ] {
        assert!(edges.contains(expected), "{expected} missing: {edges:?}");
    }
    // A function-local `use` shadows the module's import of the same name.
    let from_d: Vec<(String, String)> = analysis
        .edges()
        .into_iter()
        .filter(|e| e.from == ["d"])
        .map(|e| (e.text, show(&e.to)))
        .collect();
    assert_eq!(
        from_d,
        [
            ("crate::a::Flag".to_owned(), "crate::a".to_owned()),
            ("crate::b::inner".to_owned(), "crate::b::inner".to_owned()),
            ("i::Thing::new".to_owned(), "crate::b::inner".to_owned()),
        ]
    );
}
