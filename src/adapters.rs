//! The adapters this gateway knows, and the check that every route's settings suit its adapter.
use std::collections::BTreeMap;
use std::sync::Arc;

use qaqpa_core::Adapter;

use crate::routes::RoutesFile;

/// Adapters by the name routes.toml uses.
#[derive(Default)]
pub struct Registry {
    adapters: BTreeMap<&'static str, Arc<dyn Adapter>>,
}

impl Registry {
    /// Every adapter built into this binary.
    pub fn builtin() -> anyhow::Result<Self> {
        let mut r = Self::default();
        r.add(Arc::new(qaqpa_adapter_http::HttpAdapter::new()?));
        Ok(r)
    }

    pub fn add(&mut self, adapter: Arc<dyn Adapter>) {
        self.adapters.insert(adapter.name(), adapter);
    }

    pub fn get(&self, name: &str) -> Option<&Arc<dyn Adapter>> {
        self.adapters.get(name)
    }

    pub fn names(&self) -> impl Iterator<Item = &&'static str> {
        self.adapters.keys()
    }

    /// Every route and service names a known adapter and settings it accepts.
    pub fn check_routes(&self, routes: &RoutesFile) -> Result<(), String> {
        let known = || self.names().copied().collect::<Vec<_>>().join(", ");
        for r in &routes.routes {
            let a = self.get(&r.adapter).ok_or_else(|| {
                format!(
                    "route '{}': unknown adapter '{}' (known: {})",
                    r.name,
                    r.adapter,
                    known()
                )
            })?;
            a.check_settings(&r.settings_table())
                .map_err(|e| format!("route '{}': settings.{}", r.name, e))?;
        }
        for s in &routes.services {
            let a = self.get(&s.adapter).ok_or_else(|| {
                format!(
                    "service '{}': unknown adapter '{}' (known: {})",
                    s.name,
                    s.adapter,
                    known()
                )
            })?;
            a.check_settings(&s.settings_table())
                .map_err(|e| format!("service '{}': settings.{}", s.name, e))?;
        }
        Ok(())
    }
}
