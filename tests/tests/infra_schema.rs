//! Offline Terraform schema check: every `resource`, `data`, `provider` and
//! `module` block in `infra/` is held against the providers' own schemas,
//! without a provider registry (`terraform validate` needs provider
//! binaries, which CI cannot download).
//!
//! The schemas come from the prebuilt CDK-for-Terraform provider packages
//! pinned in `infra/schema-check/package.json` (`scripts/bootstrap` installs
//! them): their `.jsii` files list every resource's and data source's
//! configuration properties (required or optional, nested types) and the
//! attributes it exports. The Terraform names are the anchors of the
//! registry links in each property's docs (`…#content_sha256`).
//!
//! Fails on: an unknown resource or data source type, an unknown argument or
//! nested block, a nested value written in the wrong syntax (the Cloudflare
//! v5 provider takes `x = {…}` attributes, the AWS provider `x {…}` blocks),
//! a missing required argument, a reference to an undeclared resource, data
//! source, variable, local, module or module output, a reference to an
//! attribute the resource does not export, an unknown module argument or a
//! missing required module variable.
//!
//! `SCHEMA_LAG` lists the arguments newer than the packaged schemas (the
//! provider floors in `infra/` are newer): those names are accepted but their
//! contents are not checked.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use hcl::expr::{Expression, ObjectKey, TemplateExpr, TraversalOperator};
use hcl::template::{Directive, Element, Template};
use hcl::{Block, Body, Structure};
use serde::Deserialize;

/// Provider local name → npm package holding its schema.
const PACKAGES: [(&str, &str); 3] = [
    ("aws", "@cdktf/provider-aws"),
    ("cloudflare", "@cdktf/provider-cloudflare"),
    ("archive", "@cdktf/provider-archive"),
];

/// Arguments added to the providers after the versions the pinned packages
/// were generated from (cloudflare 5.14.0, aws 6.25.0): accepted by name,
/// not checked further. (kind, type, argument, since).
const SCHEMA_LAG: [(&str, &str, &str, &str); 1] = [(
    "resource",
    "aws_lambda_permission",
    "invoked_via_function_url",
    "hashicorp/aws 6.28.0",
)];

/// Attributes that still exist in the schema but are deprecated; using them
/// fails the check. (kind, type, attribute, replacement).
const DEPRECATED: [(&str, &str, &str, &str); 1] = [(
    "data",
    "aws_region",
    "name",
    "region (hashicorp/aws 6.0 deprecated `name`)",
)];

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

// --- The schemas, from the .jsii files ---------------------------------------

#[derive(Deserialize)]
struct Assembly {
    types: HashMap<String, JsiiType>,
}

#[derive(Deserialize)]
struct JsiiType {
    #[serde(default)]
    datatype: bool,
    #[serde(default)]
    docs: Docs,
    #[serde(default)]
    properties: Vec<JsiiProperty>,
    initializer: Option<Initializer>,
}

#[derive(Deserialize, Default)]
struct Docs {
    summary: Option<String>,
    remarks: Option<String>,
}

#[derive(Deserialize)]
struct Initializer {
    #[serde(default)]
    parameters: Vec<Parameter>,
}

#[derive(Deserialize)]
struct Parameter {
    name: String,
    #[serde(rename = "type")]
    ty: serde_json::Value,
}

#[derive(Deserialize)]
struct JsiiProperty {
    name: String,
    #[serde(default)]
    optional: bool,
    #[serde(default)]
    r#static: bool,
    #[serde(rename = "type")]
    ty: serde_json::Value,
    #[serde(default)]
    docs: Docs,
}

#[derive(Debug)]
struct Nested {
    fqn: String,
}

#[derive(Debug)]
struct Property {
    required: bool,
    nested: Option<Nested>,
}

/// A configuration struct: Terraform argument name → property.
type Struct = BTreeMap<String, Property>;

#[derive(Debug)]
struct Entity {
    provider: &'static str,
    config: String,
    /// Exported attributes and arguments, normalised (see `norm`).
    attributes: BTreeSet<String>,
}

#[derive(Default)]
struct Schema {
    /// ("resource" | "data" | "provider", type) → entity.
    entities: HashMap<(String, String), Entity>,
    structs: HashMap<String, Struct>,
}

/// `outputBase64Sha256` and `output_base64sha256` both become
/// `outputbase64sha256`: getters are camelCase, Terraform names snake_case
/// with digits attached either way.
fn norm(name: &str) -> String {
    name.chars()
        .filter(|c| *c != '_')
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

fn camel_to_snake(name: &str) -> String {
    let mut out = String::new();
    for c in name.chars() {
        if c.is_ascii_uppercase() {
            out.push('_');
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// The Terraform name in `{@link https://registry…/workers_script#content_sha256 WorkersScript#content_sha256}`.
fn terraform_name(property: &JsiiProperty) -> String {
    let docs = format!(
        "{} {}",
        property.docs.summary.as_deref().unwrap_or(""),
        property.docs.remarks.as_deref().unwrap_or("")
    );
    for (at, _) in docs.match_indices("#") {
        let rest = &docs[at + 1..];
        let name: String = rest
            .chars()
            .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_')
            .collect();
        // The link's anchor is followed by " Class#name}".
        if !name.is_empty() && rest[name.len()..].starts_with(' ') {
            let tail = &rest[name.len() + 1..];
            if let Some(hash) = tail.find('#') {
                if tail[hash + 1..].starts_with(&format!("{name}}}")) {
                    return name;
                }
            }
        }
    }
    camel_to_snake(&property.name)
}

/// Local struct types named in a property type (`{fqn}`, unions, lists).
fn nested_fqn(ty: &serde_json::Value, package: &str) -> Option<String> {
    match ty {
        serde_json::Value::Object(map) => {
            if let Some(serde_json::Value::String(fqn)) = map.get("fqn") {
                return fqn.starts_with(&format!("{package}.")).then(|| fqn.clone());
            }
            map.values().find_map(|v| nested_fqn(v, package))
        }
        serde_json::Value::Array(items) => items.iter().find_map(|v| nested_fqn(v, package)),
        _ => None,
    }
}

/// `Represents a {@link https://registry…/docs/resources/workers_script cloudflare_workers_script}.`
fn represented(summary: &str) -> Option<(String, String)> {
    let start = summary.find("{@link ")? + "{@link ".len();
    let end = start + summary[start..].find('}')?;
    let (url, name) = summary[start..end].split_once(' ')?;
    let kind = if url.contains("/docs/resources/") {
        "resource"
    } else if url.contains("/docs/data-sources/") {
        "data"
    } else if url.ends_with("/docs") {
        "provider"
    } else {
        return None;
    };
    Some((kind.to_owned(), name.to_owned()))
}

fn load_schema() -> Schema {
    let mut schema = Schema::default();
    for (provider, package) in PACKAGES {
        let path = root()
            .join("infra/schema-check/node_modules")
            .join(package)
            .join(".jsii");
        let bytes = std::fs::read(&path).unwrap_or_else(|e| {
            panic!(
                "{}: {e}\nThe provider schemas are missing: run scripts/bootstrap \
                 (or `cd infra/schema-check && npm ci`).",
                path.display()
            )
        });
        let assembly: Assembly = serde_json::from_slice(&bytes)
            .unwrap_or_else(|e| panic!("{}: not a jsii assembly: {e}", path.display()));
        for (fqn, ty) in &assembly.types {
            if ty.datatype {
                let properties = ty
                    .properties
                    .iter()
                    .map(|p| {
                        (
                            terraform_name(p),
                            Property {
                                required: !p.optional,
                                nested: nested_fqn(&p.ty, package).map(|fqn| Nested { fqn }),
                            },
                        )
                    })
                    .collect();
                schema.structs.insert(fqn.clone(), properties);
                continue;
            }
            let Some((kind, name)) = ty.docs.summary.as_deref().and_then(represented) else {
                continue;
            };
            let Some(config) = ty.initializer.as_ref().and_then(|init| {
                init.parameters
                    .iter()
                    .find(|p| p.name == "config")
                    .and_then(|p| nested_fqn(&p.ty, package))
            }) else {
                continue;
            };
            let attributes = ty
                .properties
                .iter()
                .filter(|p| !p.r#static && !p.name.ends_with("Input"))
                .map(|p| norm(&p.name))
                .collect();
            schema.entities.insert(
                (kind, name),
                Entity {
                    provider,
                    config,
                    attributes,
                },
            );
        }
    }
    schema
}

// --- The Terraform, parsed ------------------------------------------------------

/// One Terraform module: a directory of `.tf` files.
#[derive(Default)]
struct Module {
    dir: PathBuf,
    /// (file, body) per `.tf` file.
    files: Vec<(String, Body)>,
}

impl Module {
    fn load(dir: &Path) -> Module {
        let mut files = Vec::new();
        let mut entries: Vec<_> = std::fs::read_dir(dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|e| e.expect("dir entry").path())
            .filter(|p| p.extension().is_some_and(|e| e == "tf"))
            .collect();
        entries.sort();
        for path in entries {
            let text = std::fs::read_to_string(&path).expect("read .tf");
            let body: Body = hcl::parse(&text)
                .unwrap_or_else(|e| panic!("{} is not valid HCL: {e}", path.display()));
            files.push((path.display().to_string(), body));
        }
        Module {
            dir: dir.to_path_buf(),
            files,
        }
    }

    fn blocks<'a>(&'a self, ident: &'a str) -> impl Iterator<Item = (&'a str, &'a Block)> + 'a {
        self.files.iter().flat_map(move |(file, body)| {
            body.blocks()
                .filter(move |b| b.identifier() == ident)
                .map(move |b| (file.as_str(), b))
        })
    }

    fn labels(&self, ident: &str) -> BTreeSet<Vec<String>> {
        self.blocks(ident)
            .map(|(_, b)| b.labels().iter().map(|l| l.as_str().to_owned()).collect())
            .collect()
    }

    fn locals(&self) -> BTreeSet<String> {
        self.blocks("locals")
            .flat_map(|(_, b)| b.body().attributes().map(|a| a.key().to_owned()))
            .collect()
    }

    /// Variables and whether each is required (no default).
    fn variables(&self) -> BTreeMap<String, bool> {
        self.blocks("variable")
            .map(|(_, b)| {
                let required = !b.body().attributes().any(|a| a.key() == "default");
                (b.labels()[0].as_str().to_owned(), required)
            })
            .collect()
    }

    fn outputs(&self) -> BTreeSet<String> {
        self.labels("output")
            .into_iter()
            .map(|l| l[0].clone())
            .collect()
    }
}

/// The Terraform modules under `dir` (every directory with a `.tf` file).
fn modules(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let mut has_tf = false;
        for entry in std::fs::read_dir(&dir).expect("read infra dir") {
            let path = entry.expect("dir entry").path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            if path.is_dir() {
                if !name.starts_with('.') && name != "node_modules" {
                    stack.push(path);
                }
            } else if name.ends_with(".tf") {
                has_tf = true;
            }
        }
        if has_tf {
            found.push(dir);
        }
    }
    found.sort();
    found
}

// --- The check -------------------------------------------------------------------

struct Checker<'a> {
    schema: &'a Schema,
    errors: Vec<String>,
}

/// Arguments and blocks Terraform itself handles in resource and data blocks.
const META_ARGUMENTS: [&str; 5] = ["count", "for_each", "depends_on", "provider", "lifecycle"];
/// The arguments of the built-in `terraform_data` resource.
const TERRAFORM_DATA: [&str; 2] = ["input", "triggers_replace"];
const META_BLOCKS: [&str; 4] = ["lifecycle", "provisioner", "connection", "precondition"];

fn object_key(key: &ObjectKey) -> Option<String> {
    match key {
        ObjectKey::Identifier(id) => Some(id.as_str().to_owned()),
        ObjectKey::Expression(Expression::String(s)) => Some(s.clone()),
        ObjectKey::Expression(Expression::Variable(v)) => Some(v.as_str().to_owned()),
        _ => None,
    }
}

impl Checker<'_> {
    fn lagging(kind: &str, ty: &str, arg: &str) -> bool {
        SCHEMA_LAG
            .iter()
            .any(|(k, t, a, _)| *k == kind && *t == ty && *a == arg)
    }

    /// `body` against the struct `fqn`. Nested values: blocks for the SDKv2
    /// providers (aws, archive), attributes for the plugin-framework
    /// Cloudflare v5 provider.
    fn check_body(
        &mut self,
        at: &str,
        (kind, ty): (&str, &str),
        fqn: &str,
        body: &Body,
        top: bool,
        attribute_style: bool,
    ) {
        let Some(properties) = self.schema.structs.get(fqn) else {
            self.errors.push(format!("{at}: no schema struct {fqn}"));
            return;
        };
        let mut seen = BTreeSet::new();
        for attribute in body.attributes() {
            let key = attribute.key();
            seen.insert(key.to_owned());
            if top && META_ARGUMENTS.contains(&key) {
                continue;
            }
            if top && Self::lagging(kind, ty, key) {
                continue;
            }
            match properties.get(key) {
                None => self.errors.push(format!(
                    "{at}: unsupported argument `{key}` (not in the {ty} schema)"
                )),
                Some(Property {
                    nested: Some(nested),
                    ..
                }) => {
                    if attribute_style {
                        let nested_fqn = nested.fqn.clone();
                        self.check_literal(&format!("{at}.{key}"), &nested_fqn, attribute.expr());
                    } else {
                        self.errors.push(format!(
                            "{at}: `{key}` is a nested block in {ty}: write `{key} {{ … }}`, not `{key} = …`"
                        ));
                    }
                }
                Some(_) => {}
            }
        }
        for block in body.blocks() {
            let ident = block.identifier();
            if top && META_BLOCKS.contains(&ident) {
                seen.insert(ident.to_owned());
                continue;
            }
            let (name, inner) = if ident == "dynamic" {
                let name = block
                    .labels()
                    .first()
                    .map(|l| l.as_str().to_owned())
                    .unwrap_or_default();
                let content = block.body().blocks().find(|b| b.identifier() == "content");
                match content {
                    Some(content) => (name, content.body()),
                    None => {
                        self.errors
                            .push(format!("{at}: dynamic \"{name}\" has no content block"));
                        continue;
                    }
                }
            } else {
                (ident.to_owned(), block.body())
            };
            seen.insert(name.clone());
            match properties.get(&name) {
                None => self.errors.push(format!(
                    "{at}: unsupported block type `{name}` (not in the {ty} schema)"
                )),
                Some(Property { nested: None, .. }) => self.errors.push(format!(
                    "{at}: `{name}` is an argument in {ty}: write `{name} = …`, not a block"
                )),
                Some(Property {
                    nested: Some(nested),
                    ..
                }) => {
                    if attribute_style {
                        self.errors.push(format!(
                            "{at}: `{name}` is a nested attribute in {ty} (Cloudflare v5): write `{name} = {{ … }}`, not a block"
                        ));
                    }
                    let nested_fqn = nested.fqn.clone();
                    self.check_body(
                        &format!("{at}.{name}"),
                        (kind, ty),
                        &nested_fqn,
                        inner,
                        false,
                        attribute_style,
                    );
                }
            }
        }
        for (name, property) in properties {
            if property.required && !seen.contains(name) {
                self.errors
                    .push(format!("{at}: missing required argument `{name}` ({ty})"));
            }
        }
    }

    /// A nested attribute's value (`{…}`, `[{…}, …]`, `concat(…)`, a `for`
    /// expression): every object literal in it against the struct.
    fn check_literal(&mut self, at: &str, fqn: &str, expr: &Expression) {
        match expr {
            Expression::Object(object) => {
                let Some(properties) = self.schema.structs.get(fqn) else {
                    return;
                };
                let mut keys = BTreeSet::new();
                let mut nested = Vec::new();
                for (key, value) in object {
                    let Some(key) = object_key(key) else { continue };
                    match properties.get(&key) {
                        None => self
                            .errors
                            .push(format!("{at}: unsupported attribute `{key}`")),
                        Some(Property {
                            nested: Some(n), ..
                        }) => nested.push((key.clone(), n.fqn.clone(), value)),
                        Some(_) => {}
                    }
                    keys.insert(key);
                }
                for (name, property) in properties {
                    if property.required && !keys.contains(name) {
                        self.errors
                            .push(format!("{at}: missing required attribute `{name}`"));
                    }
                }
                for (key, fqn, value) in nested {
                    self.check_literal(&format!("{at}.{key}"), &fqn, value);
                }
            }
            Expression::Array(items) => {
                for item in items {
                    self.check_literal(at, fqn, item);
                }
            }
            Expression::FuncCall(call) if call.name.name.as_str() == "concat" => {
                for arg in &call.args {
                    self.check_literal(at, fqn, arg);
                }
            }
            Expression::ForExpr(for_expr) => self.check_literal(at, fqn, &for_expr.value_expr),
            Expression::Parenthesis(inner) => self.check_literal(at, fqn, inner),
            Expression::Conditional(cond) => {
                self.check_literal(at, fqn, &cond.true_expr);
                self.check_literal(at, fqn, &cond.false_expr);
            }
            _ => {}
        }
    }

    fn check_module(&mut self, module: &Module, all: &BTreeMap<PathBuf, Module>) {
        // Resources, data sources, providers against the schemas.
        for kind in ["resource", "data"] {
            for (file, block) in module.blocks(kind) {
                let ty = block.labels()[0].as_str();
                let name = block.labels().get(1).map(|l| l.as_str()).unwrap_or("");
                let at = format!("{file}: {kind} \"{ty}\" \"{name}\"");
                if kind == "resource" && ty == "terraform_data" {
                    self.check_builtin(&at, block.body());
                    continue;
                }
                let Some(entity) = self.schema.entities.get(&(kind.to_owned(), ty.to_owned()))
                else {
                    self.errors.push(format!(
                        "{at}: unknown {kind} type `{ty}` in the provider schemas"
                    ));
                    continue;
                };
                let config = entity.config.clone();
                let attribute_style = entity.provider == "cloudflare";
                self.check_body(
                    &at,
                    (kind, ty),
                    &config,
                    block.body(),
                    true,
                    attribute_style,
                );
            }
        }
        for (file, block) in module.blocks("provider") {
            let name = block.labels()[0].as_str();
            let at = format!("{file}: provider \"{name}\"");
            match self
                .schema
                .entities
                .get(&("provider".to_owned(), name.to_owned()))
            {
                None => self.errors.push(format!("{at}: unknown provider")),
                Some(entity) => {
                    let config = entity.config.clone();
                    let attribute_style = entity.provider == "cloudflare";
                    self.check_body(
                        &at,
                        ("provider", name),
                        &config,
                        block.body(),
                        true,
                        attribute_style,
                    );
                }
            }
        }

        // Module calls: arguments against the called module's variables.
        for (file, block) in module.blocks("module") {
            let name = block.labels()[0].as_str();
            let at = format!("{file}: module \"{name}\"");
            let Some(Expression::String(source)) = block
                .body()
                .attributes()
                .find(|a| a.key() == "source")
                .map(|a| a.expr())
            else {
                self.errors.push(format!("{at}: no literal source"));
                continue;
            };
            let dir = module.dir.join(source);
            let Some(called) = dir.canonicalize().ok().and_then(|d| all.get(&d)) else {
                self.errors.push(format!(
                    "{at}: source {source} is not a module under infra/"
                ));
                continue;
            };
            let variables = called.variables();
            let mut given = BTreeSet::new();
            for attribute in block.body().attributes() {
                let key = attribute.key();
                given.insert(key.to_owned());
                if [
                    "source",
                    "version",
                    "count",
                    "for_each",
                    "depends_on",
                    "providers",
                ]
                .contains(&key)
                {
                    continue;
                }
                if !variables.contains_key(key) {
                    self.errors.push(format!(
                        "{at}: unsupported argument `{key}` (no such variable in {source})"
                    ));
                }
            }
            for (variable, required) in &variables {
                if *required && !given.contains(variable) {
                    self.errors.push(format!(
                        "{at}: missing required argument `{variable}` (variable without default in {source})"
                    ));
                }
            }
        }

        // References in every expression of every block.
        let declared = Declared {
            resources: module.labels("resource"),
            data: module.labels("data"),
            variables: module.variables().into_keys().collect(),
            locals: module.locals(),
            modules: module
                .blocks("module")
                .filter_map(|(_, b)| {
                    let name = b.labels()[0].as_str().to_owned();
                    let source = b.body().attributes().find(|a| a.key() == "source")?;
                    let Expression::String(source) = source.expr() else {
                        return None;
                    };
                    let outputs = module
                        .dir
                        .join(source)
                        .canonicalize()
                        .ok()
                        .and_then(|d| all.get(&d))
                        .map(Module::outputs)
                        .unwrap_or_default();
                    Some((name, outputs))
                })
                .collect(),
        };
        for (file, body) in &module.files {
            let mut references = Vec::new();
            collect_body(body, &mut references);
            for reference in references {
                self.check_reference(file, &declared, &reference);
            }
        }
    }

    /// `terraform_data` (built into Terraform, in no provider package).
    fn check_builtin(&mut self, at: &str, body: &Body) {
        for attribute in body.attributes() {
            let key = attribute.key();
            if !META_ARGUMENTS.contains(&key) && !TERRAFORM_DATA.contains(&key) {
                self.errors.push(format!(
                    "{at}: unsupported argument `{key}` (terraform_data takes input, triggers_replace)"
                ));
            }
        }
        for block in body.blocks() {
            if !META_BLOCKS.contains(&block.identifier()) {
                self.errors.push(format!(
                    "{at}: unsupported block type `{}` in terraform_data",
                    block.identifier()
                ));
            }
        }
    }

    fn check_reference(&mut self, file: &str, declared: &Declared, reference: &[String]) {
        let text = reference.join(".");
        let Some(root) = reference.first() else {
            return;
        };
        let missing = |what: &str| format!("{file}: reference `{text}`: {what}");
        match root.as_str() {
            "var" => {
                if let Some(name) = reference.get(1) {
                    if !declared.variables.contains(name) {
                        self.errors.push(missing("no such variable"));
                    }
                }
            }
            "local" => {
                if let Some(name) = reference.get(1) {
                    if !declared.locals.contains(name) {
                        self.errors.push(missing("no such local value"));
                    }
                }
            }
            "module" => {
                let (Some(name), output) = (reference.get(1), reference.get(2)) else {
                    return;
                };
                match declared.modules.get(name) {
                    None => self.errors.push(missing("no such module call")),
                    Some(outputs) => {
                        if let Some(output) = output {
                            if !outputs.contains(output) {
                                self.errors.push(missing("the module has no such output"));
                            }
                        }
                    }
                }
            }
            "data" => {
                let (Some(ty), Some(name)) = (reference.get(1), reference.get(2)) else {
                    return;
                };
                if !declared.data.contains(&vec![ty.clone(), name.clone()]) {
                    self.errors
                        .push(missing("no such data block in this module"));
                    return;
                }
                if let Some(attribute) = reference.get(3) {
                    self.check_attribute(&missing, "data", ty, attribute);
                }
            }
            "terraform_data" => {
                let Some(name) = reference.get(1) else { return };
                if !declared
                    .resources
                    .contains(&vec![root.clone(), name.clone()])
                {
                    self.errors
                        .push(missing("no such resource block in this module"));
                } else if let Some(attribute) = reference.get(2) {
                    if !["id", "input", "output", "triggers_replace"].contains(&attribute.as_str())
                    {
                        self.errors.push(missing(&format!(
                            "terraform_data has no attribute `{attribute}`"
                        )));
                    }
                }
            }
            ty if PACKAGES
                .iter()
                .any(|(p, _)| ty.starts_with(&format!("{p}_"))) =>
            {
                let Some(name) = reference.get(1) else { return };
                if !declared
                    .resources
                    .contains(&vec![ty.to_owned(), name.clone()])
                {
                    self.errors
                        .push(missing("no such resource block in this module"));
                    return;
                }
                if let Some(attribute) = reference.get(2) {
                    self.check_attribute(&missing, "resource", ty, attribute);
                }
            }
            _ => {}
        }
    }

    fn check_attribute(
        &mut self,
        missing: &dyn Fn(&str) -> String,
        kind: &str,
        ty: &str,
        attribute: &str,
    ) {
        if let Some((_, _, _, instead)) = DEPRECATED
            .iter()
            .find(|(k, t, a, _)| *k == kind && *t == ty && *a == attribute)
        {
            self.errors
                .push(missing(&format!("deprecated attribute; use {instead}")));
            return;
        }
        if Self::lagging(kind, ty, attribute) {
            return;
        }
        let Some(entity) = self.schema.entities.get(&(kind.to_owned(), ty.to_owned())) else {
            return; // reported at the block
        };
        let in_config = self
            .schema
            .structs
            .get(&entity.config)
            .is_some_and(|s| s.contains_key(attribute));
        if !in_config && !entity.attributes.contains(&norm(attribute)) {
            self.errors
                .push(missing(&format!("{ty} has no attribute `{attribute}`")));
        }
    }
}

struct Declared {
    resources: BTreeSet<Vec<String>>,
    data: BTreeSet<Vec<String>>,
    variables: BTreeSet<String>,
    locals: BTreeSet<String>,
    modules: BTreeMap<String, BTreeSet<String>>,
}

// --- References: `a.b.c` traversals, with index steps left out ------------------

fn collect_body(body: &Body, out: &mut Vec<Vec<String>>) {
    for structure in body.iter() {
        match structure {
            Structure::Attribute(attribute) => collect_expr(attribute.expr(), out),
            Structure::Block(block) => collect_body(block.body(), out),
        }
    }
}

fn collect_template(template: &Template, out: &mut Vec<Vec<String>>) {
    for element in template.elements() {
        match element {
            Element::Literal(_) => {}
            Element::Interpolation(interpolation) => collect_expr(&interpolation.expr, out),
            Element::Directive(directive) => match directive.as_ref() {
                Directive::If(d) => {
                    collect_expr(&d.cond_expr, out);
                    collect_template(&d.true_template, out);
                    if let Some(f) = &d.false_template {
                        collect_template(f, out);
                    }
                }
                Directive::For(d) => {
                    collect_expr(&d.collection_expr, out);
                    collect_template(&d.template, out);
                }
            },
        }
    }
}

fn collect_expr(expr: &Expression, out: &mut Vec<Vec<String>>) {
    match expr {
        Expression::Variable(v) => out.push(vec![v.as_str().to_owned()]),
        Expression::Traversal(traversal) => {
            let mut path = Vec::new();
            if let Expression::Variable(v) = &traversal.expr {
                path.push(v.as_str().to_owned());
            } else {
                collect_expr(&traversal.expr, out);
            }
            let mut stopped = path.is_empty();
            for operator in &traversal.operators {
                match operator {
                    TraversalOperator::GetAttr(id) if !stopped => path.push(id.as_str().to_owned()),
                    TraversalOperator::Index(index) => collect_expr(index, out),
                    TraversalOperator::LegacyIndex(_) | TraversalOperator::GetAttr(_) => {}
                    TraversalOperator::AttrSplat | TraversalOperator::FullSplat => stopped = true,
                }
            }
            if !path.is_empty() {
                out.push(path);
            }
        }
        Expression::TemplateExpr(template) => collect_template_expr(template, out),
        Expression::Array(items) => items.iter().for_each(|e| collect_expr(e, out)),
        Expression::Object(object) => {
            for (key, value) in object {
                if let ObjectKey::Expression(key) = key {
                    if !matches!(key, Expression::Variable(_)) {
                        collect_expr(key, out);
                    }
                }
                collect_expr(value, out);
            }
        }
        Expression::FuncCall(call) => call.args.iter().for_each(|e| collect_expr(e, out)),
        Expression::Parenthesis(inner) => collect_expr(inner, out),
        Expression::Conditional(c) => {
            collect_expr(&c.cond_expr, out);
            collect_expr(&c.true_expr, out);
            collect_expr(&c.false_expr, out);
        }
        Expression::Operation(operation) => match operation.as_ref() {
            hcl::expr::Operation::Unary(u) => collect_expr(&u.expr, out),
            hcl::expr::Operation::Binary(b) => {
                collect_expr(&b.lhs_expr, out);
                collect_expr(&b.rhs_expr, out);
            }
        },
        Expression::ForExpr(f) => {
            collect_expr(&f.collection_expr, out);
            if let Some(k) = &f.key_expr {
                collect_expr(k, out);
            }
            collect_expr(&f.value_expr, out);
            if let Some(c) = &f.cond_expr {
                collect_expr(c, out);
            }
        }
        _ => {}
    }
}

fn collect_template_expr(template: &TemplateExpr, out: &mut Vec<Vec<String>>) {
    if let Ok(template) = Template::from_expr(template) {
        collect_template(&template, out);
    }
}

/// The check over every module under `dir`; the errors found.
fn check_tree(schema: &Schema, dir: &Path) -> Vec<String> {
    let all: BTreeMap<PathBuf, Module> = modules(dir)
        .into_iter()
        .map(|d| (d.canonicalize().expect("canonical"), Module::load(&d)))
        .collect();
    let mut checker = Checker {
        schema,
        errors: Vec::new(),
    };
    for module in all.values() {
        checker.check_module(module, &all);
    }
    checker.errors
}

fn schema() -> &'static Schema {
    static SCHEMA: std::sync::OnceLock<Schema> = std::sync::OnceLock::new();
    SCHEMA.get_or_init(load_schema)
}

#[test]
fn infra_matches_the_provider_schemas() {
    let infra = root().join("infra");
    let modules = modules(&infra);
    assert!(
        modules.len() >= 5,
        "modules and examples found: {modules:?}"
    );
    let errors = check_tree(schema(), &infra);
    assert!(
        errors.is_empty(),
        "Terraform in infra/ disagrees with the provider schemas:\n{}",
        errors.join("\n")
    );
}

/// The schemas are read correctly: Terraform names (with digits and
/// underscores) come through, required arguments are required, nested types
/// are found, and the resource types the gateway uses are all there.
#[test]
fn schemas_are_read_with_terraform_names() {
    let schema = schema();
    let config = |kind: &str, ty: &str| {
        let entity = schema
            .entities
            .get(&(kind.to_owned(), ty.to_owned()))
            .unwrap_or_else(|| panic!("{kind} {ty} missing"));
        &schema.structs[&entity.config]
    };
    let script = config("resource", "cloudflare_workers_script");
    assert!(script["script_name"].required);
    assert!(!script["content_sha256"].required);
    assert!(script["bindings"].nested.is_some());
    assert!(!script.contains_key("files"), "5.14 has no `files`");
    let version = config("resource", "cloudflare_worker_version");
    assert!(version["modules"].nested.is_some(), "{version:?}");
    let function = config("resource", "aws_lambda_function");
    assert!(function["function_name"].required);
    assert!(function["reserved_concurrent_executions"].nested.is_none());
    assert!(function["logging_config"].nested.is_some());
    let ssm = config("resource", "aws_ssm_parameter");
    assert!(ssm.contains_key("value_wo") && ssm.contains_key("value_wo_version"));
    let archive = &schema.entities[&("data".to_owned(), "archive_file".to_owned())];
    assert!(archive.attributes.contains(&norm("output_base64sha256")));
}

fn fixture_errors(tf: &str) -> Vec<String> {
    let dir = std::env::temp_dir().join(format!(
        "infra-schema-fixture-{}-{}",
        std::process::id(),
        tf.len()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("main.tf"), tf).unwrap();
    let errors = check_tree(schema(), &dir);
    std::fs::remove_dir_all(&dir).unwrap();
    errors
}

fn assert_finds(errors: &[String], needle: &str) {
    assert!(
        errors.iter().any(|e| e.contains(needle)),
        "expected an error containing {needle:?}, got: {errors:#?}"
    );
}

/// The check fails on the mistakes it is there for — starting with the
/// `files` argument `cloudflare_workers_script` never had.
#[test]
fn the_check_catches_wrong_terraform() {
    let errors = fixture_errors(
        r#"
variable "dir" { type = string }
resource "cloudflare_workers_script" "bad" {
  account_id     = "a"
  script_name    = "s"
  content_file   = "${var.dir}/index.js"
  content_sha256 = filesha256("${var.dir}/index.js")
  files = {
    "index_bg.wasm" = { content_file = "x" }
  }
  bindings = [
    { name = "X", type = "plain_text", txet = "typo" },
    { name = "Y", text = "no type" },
  ]
  migrations { new_tag = "v1" }
}
resource "cloudflare_workers_kv_namespace" "no_title" {
  account_id = "a"
}
resource "cloudflare_workers_scrypt" "unknown" {}
resource "aws_lambda_function" "f" {
  function_name = "f"
  role          = "r"
  environment = { variables = {} }
  reserved_concurrency = 5
}
data "aws_region" "current" {}
output "a" { value = cloudflare_workers_script.bad.no_such_attribute }
output "b" { value = data.aws_region.current.name }
output "c" { value = var.undeclared }
output "d" { value = aws_lambda_function.missing.arn }
output "e" { value = aws_lambda_function.f.arn }
"#,
    );
    assert_finds(&errors, "unsupported argument `files`");
    assert_finds(&errors, "unsupported attribute `txet`");
    assert_finds(&errors, "missing required attribute `type`");
    assert_finds(&errors, "`migrations` is a nested attribute");
    assert_finds(&errors, "missing required argument `title`");
    assert_finds(&errors, "unknown resource type `cloudflare_workers_scrypt`");
    assert_finds(&errors, "`environment` is a nested block");
    assert_finds(&errors, "unsupported argument `reserved_concurrency`");
    assert_finds(&errors, "has no attribute `no_such_attribute`");
    assert_finds(&errors, "deprecated attribute");
    assert_finds(&errors, "no such variable");
    assert_finds(&errors, "no such resource block");
    assert!(
        !errors
            .iter()
            .any(|e| e.contains("reference `aws_lambda_function.f.arn`")),
        "a valid reference was refused: {errors:#?}"
    );
}

/// A module call with a misspelt argument or without a required variable
/// fails, and so does a reference to an output the module lacks.
#[test]
fn the_check_catches_wrong_module_calls() {
    let dir = std::env::temp_dir().join(format!("infra-schema-modules-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("mod")).unwrap();
    std::fs::create_dir_all(dir.join("root")).unwrap();
    std::fs::write(
        dir.join("mod/main.tf"),
        "variable \"needed\" { type = string }\nvariable \"optional\" {\n  type    = string\n  default = null\n}\noutput \"url\" { value = var.needed }\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("root/main.tf"),
        "module \"m\" {\n  source   = \"../mod\"\n  optinal  = \"x\"\n}\noutput \"u\" { value = module.m.uri }\n",
    )
    .unwrap();
    let errors = check_tree(schema(), &dir);
    std::fs::remove_dir_all(&dir).unwrap();
    assert_finds(&errors, "unsupported argument `optinal`");
    assert_finds(&errors, "missing required argument `needed`");
    assert_finds(&errors, "the module has no such output");
}
