//! Xero names an organisation's time zone the Windows way, in capitals without spaces
//! (`Organisation.Timezone`: `NEWZEALANDSTANDARDTIME`); dates a person sees are that
//! organisation's local dates. Windows zone names map to IANA zones through CLDR's windowsZones
//! table (the `localzone` crate carries it); CLDR's world-wide default (territory `001`) is taken.

use chrono_tz::Tz;
use std::collections::HashMap;
use std::sync::OnceLock;

/// `NEWZEALANDSTANDARDTIME` from `New Zealand Standard Time`: how Xero writes a Windows zone.
fn xero_form(windows: &str) -> String {
    windows
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .collect::<String>()
        .to_ascii_uppercase()
}

/// Every Windows zone CLDR maps, in Xero's form, to its world-wide default IANA zone.
fn table() -> &'static HashMap<String, Tz> {
    static TABLE: OnceLock<HashMap<String, Tz>> = OnceLock::new();
    TABLE.get_or_init(|| {
        let mut out = HashMap::new();
        for tz in chrono_tz::TZ_VARIANTS {
            let Some((windows, _)) = localzone::iana_to_win_zone(tz.name()) else {
                continue;
            };
            let key = xero_form(windows);
            if out.contains_key(&key) {
                continue;
            }
            if let Some(default) = localzone::win_zone_to_iana(windows, Some("001"))
                .and_then(|name| name.parse::<Tz>().ok())
            {
                out.insert(key, default);
            }
        }
        out
    })
}

/// The IANA zone of Xero's `Organisation.Timezone`, or `None` for a name CLDR does not know.
pub fn from_xero(timezone: &str) -> Option<Tz> {
    table().get(&xero_form(timezone)).copied()
}

/// The organisation's time zone: kept from an earlier `GET /Organisation`, or read now (and kept).
/// A name CLDR does not map falls back to UTC, with a warning.
pub async fn of_organisation(
    state: &crate::AppState,
    connection: &crate::store::ConnectionRow,
) -> Result<Tz, crate::providers::xero::api::CallError> {
    let id = connection.id;
    if let Ok(Some(org)) = state.storage.connections().organisation(id).await {
        return Ok(org.timezone.parse().unwrap_or(Tz::UTC));
    }
    let answer = crate::providers::xero::api::call(
        state,
        connection,
        reqwest::Method::GET,
        "Organisation",
        None,
        None,
    )
    .await?;
    let found = &answer.body["Organisations"][0];
    if !answer.status.is_success() || !found.is_object() {
        // Not kept: asked again next time.
        tracing::warn!(connection = %id, status = %answer.status, "could not read the organisation's time zone: dating by UTC for now");
        return Ok(Tz::UTC);
    }
    let xero = found["Timezone"].as_str().unwrap_or_default().to_string();
    let tz = from_xero(&xero).unwrap_or_else(|| {
        tracing::warn!(connection = %id, timezone = %xero, "Xero's time zone is not one CLDR maps: dates are UTC");
        Tz::UTC
    });
    let org = crate::store::OrganisationRow {
        timezone: tz.name().to_string(),
        xero_timezone: xero,
        short_code: found["ShortCode"].as_str().map(str::to_string),
        currency: found["BaseCurrency"].as_str().map(str::to_string),
    };
    let now = state.clock.now();
    if let Err(e) = state
        .storage
        .connections()
        .put_organisation(id, &org, now)
        .await
    {
        tracing::warn!(connection = %id, error = %e, "could not keep the organisation's details");
    }
    Ok(tz)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xeros_zone_names_map_to_cldrs_default_zone() {
        // Every value the sandbox serves, and a few Xero organisations commonly have.
        for (xero, iana) in [
            ("NEWZEALANDSTANDARDTIME", "Pacific/Auckland"),
            ("GMTSTANDARDTIME", "Europe/London"),
            ("AUSEASTERNSTANDARDTIME", "Australia/Sydney"),
            ("EASTERNSTANDARDTIME", "America/New_York"),
            ("PACIFICSTANDARDTIME", "America/Los_Angeles"),
            ("SINGAPORESTANDARDTIME", "Asia/Singapore"),
        ] {
            assert_eq!(from_xero(xero).map(|t| t.name()), Some(iana), "{xero}");
        }
        assert_eq!(
            from_xero("New Zealand Standard Time").map(|t| t.name()),
            Some("Pacific/Auckland")
        );
        assert_eq!(from_xero("NOWHERESTANDARDTIME"), None);
        assert!(
            table().len() > 100,
            "CLDR maps well over a hundred Windows zones"
        );
    }
}
