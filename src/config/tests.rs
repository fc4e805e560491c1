//! Tests of the configuration: defaults, layers, validation, keys.

use super::*;

fn keys(cfg: &Config) -> Vec<String> {
    match cfg.validate() {
        Ok(()) => Vec::new(),
        Err(ConfigErrors(v)) => v.into_iter().map(|i| i.key).collect(),
    }
}

#[test]
fn defaults_are_valid_and_reproduce_the_original() {
    let c = Config::default();
    assert_eq!(keys(&c), Vec::<String>::new());
    assert_eq!((c.cluster.nodes, c.cluster.memory_mb), (2, 4400));
    assert_eq!(
        (c.app.inference_seconds, c.app.workers, c.app.port),
        (10.0, 1, 3000)
    );
    assert_eq!(c.metric.target, 12.0);
    assert_eq!((c.hpa.min_replicas, c.hpa.max_replicas), (1, 10));
    assert_eq!(c.hpa.scale_up.stabilization_window_seconds, 240);
    assert_eq!(c.hpa.scale_down.stabilization_window_seconds, 300);
    assert!(
        Config::defaults_for(MetricProfile::Concurrency)
            .validate()
            .is_ok()
    );
}

#[test]
fn every_error_names_its_key() {
    let mut c = Config::default();
    c.hpa.min_replicas = 5;
    c.hpa.max_replicas = 3;
    c.metric.rate_window_seconds = 30;
    c.cluster.memory_mb = 1024;
    c.app.namespace = "Bad_Name".into();
    c.app.cpu_limit = "lots".into();
    c.hpa.scale_up.policies[0].period_seconds = 0;
    c.hpa.scale_down.tolerance = Some(1.5);
    let err = c.validate().expect_err("invalid");
    let text = err.to_string();
    for key in [
        "hpa.max_replicas",
        "metric.rate_window_seconds",
        "cluster.memory_mb",
        "app.namespace",
        "app.cpu_limit",
        "hpa.scale_up.policies[0].period_seconds",
        "hpa.scale_down.tolerance",
    ] {
        assert!(text.contains(key), "{key} missing from:\n{text}");
    }
    assert!(text.contains("four scrape intervals"), "{text}");
}

#[test]
fn layers_apply_in_order_file_env_flags() {
    let layers = Layers {
        file: Some((
            "kscale.toml".into(),
            "[app]\nworkers = 2\ninference_seconds = 5.0\n".into(),
        )),
        env: vec![
            ("KSCALE_APP_WORKERS".into(), "3".into()),
            ("HOME".into(), "/root".into()),
        ],
        sets: vec![("app.inference_seconds".into(), "2.5".into())],
    };
    let c = Config::load(&layers).expect("loads");
    assert_eq!(c.app.workers, 3, "env over file");
    assert_eq!(c.app.inference_seconds, 2.5, "flag over file");
}

#[test]
fn profile_decides_the_defaults_of_the_metric_and_hpa() {
    let c = Config::load(&Layers {
        file: Some((
            "k.toml".into(),
            "[metric]\nprofile = \"concurrency\"\n".into(),
        )),
        ..Default::default()
    })
    .expect("loads");
    assert_eq!(
        c.metric,
        MetricConfig::defaults_for(MetricProfile::Concurrency)
    );
    assert_eq!(c.hpa, HpaConfig::defaults_for(MetricProfile::Concurrency));
    let err = Config::load(&Layers {
        sets: vec![("metric.profile".into(), "fast".into())],
        ..Default::default()
    })
    .expect_err("unknown profile");
    assert!(err.to_string().contains("metric.profile"), "{err}");
}

#[test]
fn unknown_keys_and_bad_types_are_refused_with_their_place() {
    let err = Config::load(&Layers {
        file: Some(("k.toml".into(), "[app]\nworkerz = 2\n".into())),
        ..Default::default()
    })
    .expect_err("unknown key");
    assert!(format!("{err:#}").contains("workerz"), "{err:#}");
    let err = Config::load(&Layers {
        sets: vec![("app.workers".into(), "two".into())],
        ..Default::default()
    })
    .expect_err("bad type");
    assert!(format!("{err:#}").contains("app.workers"), "{err:#}");
    let err = Config::load(&Layers {
        env: vec![("KSCALE_APP_WORKRS".into(), "2".into())],
        ..Default::default()
    })
    .expect_err("unknown env");
    assert!(err.to_string().contains("KSCALE_APP_WORKRS"), "{err}");
}

#[test]
fn other_variables_sharing_the_prefix_are_not_configuration() {
    let env = vec![
        (
            "KSCALE_LOAD_URL".to_string(),
            "http://127.0.0.1:3000".to_string(),
        ),
        (
            "KSCALE_CONTROLPLANE_CACHE".to_string(),
            "/tmp/x".to_string(),
        ),
        ("KSCALE_CONTEXT".to_string(), "other".to_string()),
    ];
    assert!(
        Config::load(&Layers {
            env,
            ..Default::default()
        })
        .is_ok()
    );
    let typo = vec![("KSCALE_HPA_MAX_REPLICA".to_string(), "3".to_string())];
    let err = Config::load(&Layers {
        env: typo,
        ..Default::default()
    })
    .expect_err("typo in a section");
    assert!(err.to_string().contains("KSCALE_HPA_MAX_REPLICA"), "{err}");
}

/// Every dotted scalar key of the configuration type, read from the fields serde's derive
/// declares (not from a value, where an unset `Option` is invisible).
mod schema {
    use serde::de::{self, DeserializeSeed, Deserializer, IntoDeserializer, MapAccess, Visitor};

    pub fn keys<T: serde::de::DeserializeOwned>() -> Vec<String> {
        let mut out = Vec::new();
        T::deserialize(Recorder {
            prefix: String::new(),
            out: &mut out,
        })
        .expect("the recorder deserializes every configuration type");
        out
    }

    struct Recorder<'a> {
        prefix: String,
        out: &'a mut Vec<String>,
    }

    #[derive(Debug)]
    struct Error(String);
    impl std::fmt::Display for Error {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(&self.0)
        }
    }
    impl std::error::Error for Error {}
    impl de::Error for Error {
        fn custom<T: std::fmt::Display>(msg: T) -> Self {
            Error(msg.to_string())
        }
    }

    impl<'de> Deserializer<'de> for Recorder<'_> {
        type Error = Error;
        fn deserialize_struct<V: Visitor<'de>>(
            self,
            _name: &'static str,
            fields: &'static [&'static str],
            visitor: V,
        ) -> Result<V::Value, Error> {
            visitor.visit_map(Fields {
                prefix: self.prefix,
                fields: fields.iter(),
                current: None,
                out: self.out,
            })
        }
        fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
            self.out.push(self.prefix);
            visitor.visit_none()
        }
        fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
            // A list of scalars is one key (`app.args`); a list of tables (scaling policies) is
            // set in kscale.toml only. One element, recorded under `KEY[]`, tells them apart.
            let mut inner = Vec::new();
            let value = visitor.visit_seq(OneElement(Some(Recorder {
                prefix: format!("{}[]", self.prefix),
                out: &mut inner,
            })))?;
            if inner.len() == 1 && inner[0].ends_with("[]") {
                self.out.push(self.prefix);
            }
            Ok(value)
        }
        fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
            // A map (`app.env`) is one key.
            self.out.push(self.prefix);
            visitor.visit_map(de::value::MapDeserializer::<_, Error>::new(
                std::iter::empty::<(String, String)>(),
            ))
        }
        fn deserialize_enum<V: Visitor<'de>>(
            self,
            _name: &'static str,
            variants: &'static [&'static str],
            visitor: V,
        ) -> Result<V::Value, Error> {
            self.out.push(self.prefix);
            visitor.visit_enum(variants[0].into_deserializer())
        }
        fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
            self.out.push(self.prefix);
            visitor.visit_string(String::new())
        }
        fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
            self.out.push(self.prefix);
            visitor.visit_u64(1)
        }
        fn deserialize_f64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
            self.out.push(self.prefix);
            visitor.visit_f64(1.0)
        }
        fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
            self.out.push(self.prefix);
            visitor.visit_bool(true)
        }
        serde::forward_to_deserialize_any! {
            i8 i16 i32 i64 u8 u16 u32 u64 f32 char str bytes byte_buf unit
            unit_struct newtype_struct tuple tuple_struct identifier ignored_any
        }
    }

    struct OneElement<'a>(Option<Recorder<'a>>);

    impl<'de> de::SeqAccess<'de> for OneElement<'_> {
        type Error = Error;
        fn next_element_seed<T: DeserializeSeed<'de>>(
            &mut self,
            seed: T,
        ) -> Result<Option<T::Value>, Error> {
            self.0.take().map(|r| seed.deserialize(r)).transpose()
        }
    }

    struct Fields<'a> {
        prefix: String,
        fields: std::slice::Iter<'static, &'static str>,
        current: Option<&'static str>,
        out: &'a mut Vec<String>,
    }

    impl<'de> MapAccess<'de> for Fields<'_> {
        type Error = Error;
        fn next_key_seed<K: DeserializeSeed<'de>>(
            &mut self,
            seed: K,
        ) -> Result<Option<K::Value>, Error> {
            let Some(field) = self.fields.next() else {
                return Ok(None);
            };
            self.current = Some(field);
            seed.deserialize(field.into_deserializer()).map(Some)
        }
        fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, Error> {
            let field = self.current.take().unwrap_or_default();
            let prefix = if self.prefix.is_empty() {
                field.to_string()
            } else {
                format!("{}.{field}", self.prefix)
            };
            seed.deserialize(Recorder {
                prefix,
                out: self.out,
            })
        }
    }
}

#[test]
fn every_key_of_the_type_is_listed_settable_in_every_layer_and_shown() {
    let mut from_type = schema::keys::<Config>();
    from_type.sort();
    let defaults = Config::default();
    let mut listed = defaults.leaf_keys().expect("keys");
    listed.sort();
    assert_eq!(listed, from_type, "Config::leaf_keys and the type disagree");
    assert!(listed.contains(&"hpa.scale_up.tolerance".to_string()));

    let template = toml::Value::try_from(defaults.with_every_key()).expect("toml");
    let shown = defaults.to_display_toml().expect("display");
    let json = defaults.to_display_json().expect("json");
    for key in &listed {
        let mut node = &template;
        for part in key.split('.') {
            node = &node[part];
        }
        let text = match node {
            toml::Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        let env = format!("KSCALE_{}", key.replace('.', "_").to_ascii_uppercase());
        for (layer, layers) in [
            (
                "--set",
                Layers {
                    sets: vec![(key.clone(), text.clone())],
                    ..Default::default()
                },
            ),
            (
                "env",
                Layers {
                    env: vec![(env.clone(), text.clone())],
                    ..Default::default()
                },
            ),
        ] {
            let loaded = Config::load(&layers)
                .unwrap_or_else(|e| panic!("{key} cannot be set through {layer}: {e:#}"));
            assert!(
                loaded.unset_keys().expect("unset").iter().all(|k| k != key),
                "{key} set through {layer} is still unset"
            );
        }
        // In a file, a key is written in the table of its section (or sub-section).
        let (table, leaf) = key.rsplit_once('.').expect("dotted");
        let file = format!("[{table}]\n{leaf} = {node}\n");
        let merged = Config::load(&Layers {
            file: Some(("k.toml".into(), file.clone())),
            ..Default::default()
        });
        merged.unwrap_or_else(|e| panic!("{key} cannot be set in kscale.toml ({file}): {e:#}"));
        assert!(
            shown.contains(&format!("\n{leaf} = ")) || shown.contains(&format!("# {key}\n")),
            "kscale config does not show {key}:\n{shown}"
        );
        let mut node = &json;
        for part in key.split('.') {
            node = node
                .get(part)
                .unwrap_or_else(|| panic!("kscale config --output json lacks {key}"));
        }
    }
    assert!(shown.contains("# hpa.scale_up.tolerance"), "{shown}");
    assert!(json["hpa"]["scale_up"]["tolerance"].is_null());
    let set = Config::load(&Layers {
        sets: vec![("hpa.scale_up.tolerance".into(), "0.5".into())],
        ..Default::default()
    })
    .expect("tolerance settable");
    assert_eq!(set.hpa.scale_up.tolerance, Some(0.5));
    assert!(set.validate().is_ok());
}

#[test]
fn derived_values_are_checked_against_what_the_server_and_the_api_accept() {
    let with = |f: &dyn Fn(&mut AppConfig)| {
        let mut c = Config::default();
        f(&mut c.app);
        c
    };
    // DRAIN_SECONDS = (100000 + 1) * 10 + 15 = 1000025 > 1000000.
    let err = with(&|a| a.max_queue = 100_000)
        .validate()
        .expect_err("too long a drain");
    let text = err.to_string();
    assert!(
        text.contains("app.max_queue") && text.contains("1000025"),
        "{text}"
    );
    for (key, c) in [
        (
            "app.keep_alive_seconds",
            with(&|a| a.keep_alive_seconds = 2_000_000),
        ),
        (
            "app.max_connection_age_seconds",
            with(&|a| a.max_connection_age_seconds = u64::MAX),
        ),
        (
            "app.drain_margin_seconds",
            with(&|a| a.drain_margin_seconds = u64::MAX),
        ),
        (
            "app.pre_stop_seconds",
            with(&|a| a.pre_stop_seconds = i64::MAX as u64),
        ),
        (
            "app.pre_stop_seconds",
            with(&|a| a.pre_stop_seconds = u64::MAX),
        ),
    ] {
        let text = c.validate().expect_err(key).to_string();
        assert!(text.contains(key), "{key} missing from {text}");
    }
    let mut c = Config::default();
    c.timeouts.rollout_seconds = u64::MAX;
    c.metric.relist_interval_seconds = u64::MAX;
    c.hpa.max_replicas = u32::MAX;
    let text = c.validate().expect_err("out of range").to_string();
    for key in [
        "timeouts.rollout_seconds",
        "metric.relist_interval_seconds",
        "hpa.max_replicas",
    ] {
        assert!(text.contains(key), "{key} missing from {text}");
    }
    // The largest valid settings stay within the server's and the API's ranges.
    let c = with(&|a| {
        a.max_queue = 99_000;
        a.workers = 1024;
        a.inference_seconds = 3600.0;
        a.drain_margin_seconds = 1000;
        a.pre_stop_seconds = 1_000_000;
    });
    assert!(c.validate().is_ok(), "{:?}", c.validate());
    assert!(
        c.app
            .drain_seconds()
            .is_some_and(|d| d <= SERVER_MAX_SECONDS)
    );
    assert!(c.app.termination_grace_seconds().is_some());
}

#[test]
fn every_section_has_its_environment_prefix() {
    let prefixes = Config::default().env_section_prefixes().expect("prefixes");
    let sections: Vec<String> = match serde_json::to_value(Config::default()).expect("json") {
        serde_json::Value::Object(o) => o
            .into_iter()
            .filter(|(_, v)| v.is_object())
            .map(|(k, _)| format!("{}_", k.to_ascii_uppercase()))
            .collect(),
        other => panic!("not an object: {other}"),
    };
    assert_eq!(prefixes.len(), 6, "{prefixes:?}");
    for s in &sections {
        assert!(prefixes.contains(s), "{s} is missing from {prefixes:?}");
    }
    // A key of the last section is read from the environment, and a typo in it is refused.
    let mut c = Config::default();
    c.apply_env([(
        "KSCALE_TIMEOUTS_COMMAND_SECONDS".to_string(),
        "7".to_string(),
    )])
    .expect("applies");
    assert_eq!(c.timeouts.command_seconds, 7);
    let err = c
        .apply_env([(
            "KSCALE_TIMEOUTS_COMAND_SECONDS".to_string(),
            "7".to_string(),
        )])
        .expect_err("a typo in a section's key");
    assert!(
        err.to_string().contains("KSCALE_TIMEOUTS_COMAND_SECONDS"),
        "{err}"
    );
}

#[test]
fn every_deadline_is_checked_including_new_ones() {
    let mut c = Config::default();
    c.timeouts.command_seconds = 0;
    c.timeouts.port_forward_seconds = MAX_TIMEOUT_SECONDS + 1;
    let found = keys(&c);
    assert_eq!(
        found,
        ["timeouts.command_seconds", "timeouts.port_forward_seconds"],
        "{found:?}"
    );
}

#[test]
fn the_server_decides_the_defaults_of_the_app_and_the_metric_in_every_layer() {
    use crate::config::servers::ServerKind;
    for layers in [
        Layers {
            sets: vec![("app.server".into(), "vllm".into())],
            ..Default::default()
        },
        Layers {
            env: vec![("KSCALE_APP_SERVER".into(), "vllm".into())],
            ..Default::default()
        },
        Layers {
            file: Some(("k.toml".into(), "[app]\nserver = \"vllm\"\n".into())),
            ..Default::default()
        },
    ] {
        let c = Config::load(&layers).expect("loads");
        assert_eq!(c.app.server, ServerKind::Vllm);
        assert_eq!(c.app.port, 8000);
        assert_eq!(c.app.image, "vllm/vllm-openai:v0.11.0");
        assert_eq!(c.metric.profile, MetricProfile::Queue);
        assert_eq!(c.metric.name, "vllm:num_requests_waiting");
        assert_eq!(c.metric.target, 5.0);
        assert_eq!(c.hpa, HpaConfig::defaults_for(MetricProfile::Queue));
        assert!(c.validate().is_ok(), "{:?}", c.validate());
    }
    // A user's own keys win over the server's defaults.
    let c = Config::load(&Layers {
        sets: vec![
            ("app.server".into(), "vllm".into()),
            ("app.port".into(), "9000".into()),
            ("metric.profile".into(), "mean-duration".into()),
            ("metric.target".into(), "20".into()),
        ],
        ..Default::default()
    })
    .expect("loads");
    assert_eq!(
        (c.app.port, c.metric.profile, c.metric.target),
        (9000, MetricProfile::MeanDuration, 20.0)
    );
    assert_eq!(c.metric.name, "vllm_request_duration_seconds");
}

#[test]
fn llamacpp_targets_one_request_per_slot_unless_told_otherwise() {
    let load = |sets: &[(&str, &str)]| {
        Config::load(&Layers {
            sets: sets
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ..Default::default()
        })
        .expect("loads")
    };
    let c = load(&[("app.server", "llamacpp"), ("app.workers", "3")]);
    assert_eq!(c.metric.profile, MetricProfile::Concurrency);
    assert_eq!(c.metric.target, 3.0, "one per slot");
    let c = load(&[
        ("app.server", "llamacpp"),
        ("app.workers", "3"),
        ("metric.target", "2"),
    ]);
    assert_eq!(c.metric.target, 2.0, "an explicit target stays");
    let c = load(&[("app.server", "llamacpp"), ("metric.profile", "queue")]);
    assert_eq!(c.metric.name, "llamacpp:requests_deferred");
}

#[test]
fn lists_and_tables_are_set_inline_and_env_by_name() {
    let c = Config::load(&Layers {
        sets: vec![
            ("app.args".into(), r#"["--ctx-size", "512"]"#.into()),
            ("app.env".into(), r#"{HF_HOME = "/tmp"}"#.into()),
            ("app.env.VLLM_LOGGING_LEVEL".into(), "DEBUG".into()),
        ],
        env: vec![(
            "KSCALE_METRIC_GAUGES".into(),
            r#"["inference_queue_depth"]"#.into(),
        )],
        ..Default::default()
    })
    .expect("loads");
    assert_eq!(c.app.args, ["--ctx-size", "512"]);
    assert_eq!(c.app.env["HF_HOME"], "/tmp");
    assert_eq!(c.app.env["VLLM_LOGGING_LEVEL"], "DEBUG");
    assert_eq!(c.metric.gauges, ["inference_queue_depth"]);
    let err = Config::load(&Layers {
        sets: vec![("app.args".into(), "--ctx-size 512".into())],
        ..Default::default()
    })
    .expect_err("not a list");
    assert!(format!("{err:#}").contains("app.args"), "{err:#}");
}

#[test]
fn the_metric_must_be_one_the_server_exposes() {
    let bad = |sets: &[(&str, &str)]| -> String {
        let c = Config::load(&Layers {
            sets: sets
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ..Default::default()
        })
        .expect("loads");
        c.validate().expect_err("invalid").to_string()
    };
    let e = bad(&[
        ("app.server", "llamacpp"),
        ("metric.profile", "mean-duration"),
    ]);
    assert!(
        e.contains("metric.profile") && e.contains("histogram"),
        "{e}"
    );
    let e = bad(&[
        ("app.server", "tgi"),
        ("metric.gauges", r#"["vllm:num_requests_waiting"]"#),
        ("metric.profile", "queue"),
    ]);
    assert!(
        e.contains("metric.gauges") && e.contains("tgi_queue_size"),
        "{e}"
    );
    let e = bad(&[("metric.name", "a/b")]);
    assert!(e.contains("metric.name"), "{e}");
    let e = bad(&[("app.env.1BAD", "x")]);
    assert!(e.contains("app.env"), "{e}");
    let e = bad(&[
        ("app.server", "vllm"),
        ("app.model", crate::config::servers::PLACEHOLDER_MODEL),
    ]);
    assert!(e.contains("app.model"), "{e}");
}
