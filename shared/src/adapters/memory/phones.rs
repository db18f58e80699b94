//! The in-memory store's phones.

use super::*;

#[async_trait]
impl PhoneStore for MemoryStore {
    async fn list_phones(&self, owner: Owner<'_>) -> Result<Vec<PhoneRecord>, PortError> {
        Ok(self
            .lock()?
            .phones
            .get(&user_key(owner))
            .cloned()
            .unwrap_or_default())
    }

    async fn set_phone_label(
        &self,
        owner: Owner<'_>,
        phone_id: &PhoneId,
        label: Option<String>,
    ) -> Result<Option<PhoneRecord>, PortError> {
        let mut s = self.lock()?;
        let phone = s
            .phones
            .get_mut(&user_key(owner))
            .and_then(|list| list.iter_mut().find(|p| &p.phone_id == phone_id));
        Ok(phone.map(|p| {
            p.label = label;
            p.clone()
        }))
    }

    async fn set_primary(
        &self,
        owner: Owner<'_>,
        phone_id: &PhoneId,
        seen: &[PhoneRecord],
    ) -> Result<bool, PortError> {
        let mut s = self.lock()?;
        let Some(list) = s.phones.get_mut(&user_key(owner)) else {
            return Ok(false);
        };
        if !primaries_as_seen(list, seen) || !list.iter().any(|p| &p.phone_id == phone_id) {
            return Ok(false);
        }
        for p in list.iter_mut() {
            p.primary = &p.phone_id == phone_id;
        }
        Ok(true)
    }

    async fn remove_phone(&self, owner: Owner<'_>, removal: &Removal) -> Result<bool, PortError> {
        let mut s = self.lock()?;
        let key = user_key(owner);
        let list = s.phones.get(&key).cloned().unwrap_or_default();
        let as_seen = primaries_as_seen(&list, &removal.seen)
            && list
                .iter()
                .any(|p| p.phone_id == removal.phone.phone_id && p.number == removal.phone.number)
            && removal
                .promote
                .as_ref()
                .is_none_or(|id| list.iter().any(|p| &p.phone_id == id && !p.primary));
        let has_app = s.apps.contains_key(&key);
        // The last phone's removal also pins the app as seen: the last factor is decided by both.
        if !as_seen || (list.len() == 1 && has_app != removal.app_seen) {
            return Ok(false);
        }
        if list.len() == 1 && !has_app {
            // The last factor: the recovery codes go in the same step.
            s.recovery.remove(&key);
        }
        let before = s.held(&key);
        if let Some(list) = s.phones.get_mut(&key) {
            list.retain(|p| p.phone_id != removal.phone.phone_id);
            if let Some(promote) = &removal.promote {
                for p in list.iter_mut() {
                    if &p.phone_id == promote {
                        p.primary = true;
                    }
                }
            }
        }
        if let Some(tags) = s.number_tags.get_mut(&key) {
            tags.remove(&removal.number_tag);
        }
        s.factors_moved(&key, before);
        Ok(true)
    }
}
