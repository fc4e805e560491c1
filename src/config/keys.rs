//! Configuration keys as text: `KSCALE_*` variables, `--set KEY=VALUE`, and `kscale config`'s
//! listing. The keys come from the type's serialization, so a new field or section is settable
//! everywhere without a list to keep.

use anyhow::Context as _;

use super::Config;
use crate::hpa::DEFAULT_TOLERANCE;

/// Keys whose value is a table of names to text, set whole (`{A = "1"}`) or by name.
const MAP_KEYS: &[&str] = &["app.env"];

/// A list or table written inline, as in TOML (`["a", "b"]`, `{A = "1"}`).
fn inline(key: &str, value: &str, example: &str) -> anyhow::Result<toml::Value> {
    let doc: toml::Table = toml::from_str(&format!("v = {value}"))
        .map_err(|_| anyhow::anyhow!("{key}: {value:?} is not {example}"))?;
    doc.get("v")
        .cloned()
        .ok_or_else(|| anyhow::anyhow!("{key}: {value:?} is not {example}"))
}

impl Config {
    /// Applies `KSCALE_<SECTION>_<KEY>` environment variables (e.g. `KSCALE_APP_WORKERS=2`) from
    /// `vars` over this configuration.
    pub fn apply_env<I>(&mut self, vars: I) -> anyhow::Result<()>
    where
        I: IntoIterator<Item = (String, String)>,
    {
        let keys = self.leaf_keys()?;
        let sections = self.env_section_prefixes()?;
        for (name, value) in vars {
            let Some(rest) = name.strip_prefix("KSCALE_") else {
                continue;
            };
            // Only a configuration section's prefix is checked strictly, so a typo in a key is
            // caught while other variables sharing the prefix (the global flags' KSCALE_CONTEXT,
            // `kscale load`'s KSCALE_LOAD_URL, the test harness' settings) pass through.
            if !sections.iter().any(|p| rest.starts_with(p.as_str())) {
                continue;
            }
            let Some(key) = keys
                .iter()
                .find(|k| k.replace('.', "_").to_ascii_uppercase() == rest)
            else {
                anyhow::bail!(
                    "unknown environment variable {name}: it maps to no configuration key (e.g. KSCALE_APP_WORKERS for app.workers)"
                );
            };
            self.set(key, &value)
                .with_context(|| format!("from environment variable {name}"))?;
        }
        Ok(())
    }

    /// The `KSCALE_` variable prefix of every section (`APP_`, `TIMEOUTS_`, ...), read from the
    /// type's serialization: a new section's variables are recognized without a list to keep.
    pub fn env_section_prefixes(&self) -> anyhow::Result<Vec<String>> {
        let toml::Value::Table(doc) = toml::Value::try_from(self.with_every_key())? else {
            anyhow::bail!("the configuration does not serialize as a table");
        };
        Ok(doc
            .iter()
            .filter(|(_, v)| v.is_table())
            .map(|(k, _)| format!("{}_", k.to_ascii_uppercase()))
            .collect())
    }

    /// This configuration with every optional field set, so that its serialization holds every
    /// key (TOML has no null: an unset `Option` is simply absent).
    pub(super) fn with_every_key(&self) -> Self {
        let mut full = self.clone();
        for rules in [&mut full.hpa.scale_up, &mut full.hpa.scale_down] {
            rules.tolerance.get_or_insert(DEFAULT_TOLERANCE);
        }
        if full.app.env.is_empty() {
            full.app.env.insert("NAME".into(), "value".into());
        }
        full
    }

    /// Optional keys that are unset here, for `kscale config` to show as such.
    pub fn unset_keys(&self) -> anyhow::Result<Vec<String>> {
        let set = self.leaf_keys_present()?;
        Ok(self
            .leaf_keys()?
            .into_iter()
            .filter(|k| !set.contains(k))
            .collect())
    }

    /// `kscale config` as TOML: every key with its value; unset optional keys as comments.
    pub fn to_display_toml(&self) -> anyhow::Result<String> {
        let mut text = toml::to_string_pretty(self)?;
        let unset = self.unset_keys()?;
        if !unset.is_empty() {
            text.push_str("\n# Unset (Kubernetes' default applies; set with --set KEY=VALUE):\n");
            for key in unset {
                text.push_str(&format!("# {key}\n"));
            }
        }
        Ok(text)
    }

    /// `kscale config --output json`: every key, unset optional keys as `null`.
    pub fn to_display_json(&self) -> anyhow::Result<serde_json::Value> {
        let mut json = serde_json::to_value(self)?;
        for key in self.unset_keys()? {
            let mut node = &mut json;
            let parts: Vec<&str> = key.split('.').collect();
            for part in &parts[..parts.len() - 1] {
                node = node
                    .get_mut(*part)
                    .with_context(|| format!("{key} has no section in the JSON form"))?;
            }
            if let Some(table) = node.as_object_mut() {
                table.insert(parts[parts.len() - 1].to_string(), serde_json::Value::Null);
            }
        }
        Ok(json)
    }

    /// Sets one dotted key from text (`--set app.workers=2`), typed by the key's value in the
    /// defaults (optional keys included).
    pub fn set(&mut self, key: &str, value: &str) -> anyhow::Result<()> {
        // One variable of the container: `--set app.env.HF_HOME=/tmp`.
        if let Some(name) = key.strip_prefix("app.env.") {
            if name.is_empty() || name.contains('.') {
                anyhow::bail!("{key}: write app.env.NAME=VALUE with a variable NAME");
            }
            self.app.env.insert(name.to_string(), value.to_string());
            return Ok(());
        }
        let mut template = toml::Value::try_from(self.with_every_key())?;
        let mut kind = &mut template;
        for part in key.split('.') {
            kind = kind
                .get_mut(part)
                .ok_or_else(|| anyhow::anyhow!("unknown configuration key {key:?}"))?;
        }
        let parsed = match kind {
            toml::Value::String(_) => toml::Value::String(value.to_string()),
            toml::Value::Integer(_) => toml::Value::Integer(
                value
                    .trim()
                    .parse()
                    .map_err(|_| anyhow::anyhow!("{key}: {value:?} is not a whole number"))?,
            ),
            toml::Value::Float(_) => toml::Value::Float(
                value
                    .trim()
                    .parse()
                    .map_err(|_| anyhow::anyhow!("{key}: {value:?} is not a number"))?,
            ),
            toml::Value::Boolean(_) => toml::Value::Boolean(
                value
                    .trim()
                    .parse()
                    .map_err(|_| anyhow::anyhow!("{key}: {value:?} is not true or false"))?,
            ),
            toml::Value::Array(items) if !items.iter().any(toml::Value::is_table) => {
                inline(key, value, "a list, e.g. [\"--ctx-size\", \"512\"]")?
            }
            toml::Value::Table(_) if MAP_KEYS.contains(&key) => {
                inline(key, value, "a table, e.g. {HF_HOME = \"/tmp\"}")?
            }
            _ => anyhow::bail!("{key} is a table or list: set it in kscale.toml"),
        };
        let mut doc = toml::Value::try_from(&*self)?;
        let mut node = &mut doc;
        let parts: Vec<&str> = key.split('.').collect();
        for (i, part) in parts.iter().enumerate() {
            let toml::Value::Table(table) = node else {
                anyhow::bail!("unknown configuration key {key:?}");
            };
            // An unset optional key is absent from the document: create it.
            let last = i + 1 == parts.len();
            node = table.entry(part.to_string()).or_insert_with(|| {
                if last {
                    parsed.clone()
                } else {
                    toml::Value::Table(toml::Table::new())
                }
            });
        }
        *node = parsed;
        *self = doc
            .try_into()
            .map_err(|e: toml::de::Error| anyhow::anyhow!("{key}: {}", e.message()))?;
        Ok(())
    }

    /// Every settable dotted key with a scalar value, optional keys included.
    pub fn leaf_keys(&self) -> anyhow::Result<Vec<String>> {
        self.with_every_key().leaf_keys_present()
    }

    /// The dotted scalar keys this configuration's serialization holds (unset options absent).
    fn leaf_keys_present(&self) -> anyhow::Result<Vec<String>> {
        fn walk(prefix: &str, v: &toml::Value, out: &mut Vec<String>) {
            if let toml::Value::Table(t) = v {
                for (k, v) in t {
                    let key = if prefix.is_empty() {
                        k.clone()
                    } else {
                        format!("{prefix}.{k}")
                    };
                    match v {
                        toml::Value::Table(_) if !MAP_KEYS.contains(&key.as_str()) => {
                            walk(&key, v, out)
                        }
                        // Lists of tables (scaling policies) are set in kscale.toml only.
                        toml::Value::Array(items) if items.iter().any(toml::Value::is_table) => {}
                        _ => out.push(key),
                    }
                }
            }
        }
        let mut out = Vec::new();
        walk("", &toml::Value::try_from(self)?, &mut out);
        Ok(out)
    }
}
