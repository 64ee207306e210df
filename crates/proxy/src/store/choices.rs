//! The organisations a pending choice offers, kept in one stored shape for every backend: a
//! backend writes the text [`text`] makes and reads it back with [`read`], so no caller handles
//! the JSON. The field names stay what they were when Xero was the only provider: choices written
//! by an older proxy (open for a few minutes across an upgrade) still read.

use crate::providers::Organisation;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

#[derive(Serialize, Deserialize)]
struct Offered {
    tenant_id: String,
    tenant_name: String,
    /// The provider's id of the link to the organisation (Xero's connection id).
    xero_connection_id: Option<Uuid>,
}

/// The stored text of the organisations on offer.
pub fn text(organisations: &[Organisation]) -> String {
    let offered: Vec<Offered> = organisations
        .iter()
        .map(|o| Offered {
            tenant_id: o.tenant_id.clone(),
            tenant_name: o.name.clone(),
            xero_connection_id: o.link_id,
        })
        .collect();
    serde_json::to_string(&offered).expect("a list of strings and ids serializes")
}

/// The organisations on offer, read back from their stored text.
pub fn read(text: &str) -> Result<Vec<Organisation>, serde_json::Error> {
    let offered: Vec<Offered> = serde_json::from_str(text)?;
    Ok(offered
        .into_iter()
        .map(|o| Organisation {
            tenant_id: o.tenant_id,
            name: o.tenant_name,
            link_id: o.xero_connection_id,
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn organisations_read_back_as_written_and_an_older_proxys_text_still_reads() {
        let orgs = vec![
            Organisation {
                tenant_id: "t-1".into(),
                name: "Kiwi & Co \"Ltd\"".into(),
                link_id: Some(Uuid::from_u128(7)),
            },
            Organisation {
                tenant_id: "loc-2".into(),
                name: "Le Bistro".into(),
                link_id: None,
            },
        ];
        assert_eq!(read(&text(&orgs)).unwrap(), orgs);
        let older = r#"[{"tenant_id":"t-9","tenant_name":"Old Org","xero_connection_id":null}]"#;
        assert_eq!(
            read(older).unwrap(),
            vec![Organisation {
                tenant_id: "t-9".into(),
                name: "Old Org".into(),
                link_id: None
            }]
        );
        assert!(read("not json").is_err());
    }
}
