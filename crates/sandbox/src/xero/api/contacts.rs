//! Contacts: `GET` (by id or number, `where`, paging, `If-Modified-Since`), `PUT` (create; a duplicate
//! name is a validation error) and `POST` (create or update).

use serde_json::Value;
use std::collections::HashSet;
use uuid::Uuid;

use super::{batch_reply, elements, failed_element, listing, render, Ctx, Reply};
use crate::xero::model::{Contact, World};
use crate::xero::webhooks::Event;
use crate::xero::xjson::{text, uuid_field};

pub fn get(ctx: &Ctx, world: &World, id: Option<&str>) -> Result<Reply, Reply> {
    let tenant = world
        .tenant(ctx.tenant)
        .expect("the dispatcher checked the tenant");
    let mut items: Vec<&Contact> = tenant.contacts.iter().collect();
    if let Some(id) = id {
        items.retain(|c| {
            c.id.to_string().eq_ignore_ascii_case(id) || c.contact_number.as_deref() == Some(id)
        });
        if items.is_empty() {
            return Err(Reply::not_found());
        }
    }
    if let Some(ids) = ctx.param("IDs") {
        let wanted: HashSet<String> = ids.split(',').map(|s| s.trim().to_lowercase()).collect();
        items.retain(|c| wanted.contains(&c.id.to_string()));
    }
    if !ctx
        .param("includeArchived")
        .is_some_and(|v| v.eq_ignore_ascii_case("true"))
        && id.is_none()
    {
        items.retain(|c| c.status != "ARCHIVED");
    }
    listing::list(
        ctx,
        "Contacts",
        items.into_iter().map(render::contact).collect(),
    )
}

enum Plan {
    Create(Contact),
    Update(usize, Contact),
}

pub fn write(
    ctx: &Ctx,
    world: &mut World,
    path_id: Option<&str>,
    body: Value,
    create_only: bool,
) -> Reply {
    let tenant = world
        .tenant_mut(ctx.tenant)
        .expect("the dispatcher checked the tenant");
    let mut batch_names: HashSet<String> = HashSet::new();
    let plans: Vec<Result<Plan, Value>> = elements(body, "Contacts")
        .into_iter()
        .map(|el| {
            let mut errors = Vec::new();
            let id = match path_id.map(|p| Uuid::parse_str(p).map_err(|_| p.to_string())) {
                Some(Ok(id)) => Some(id),
                Some(Err(p)) => {
                    errors.push(format!("'{p}' is not a ContactID"));
                    None
                }
                None => uuid_field(&el, "ContactID").unwrap_or_else(|_| {
                    errors.push("ContactID must be a GUID".into());
                    None
                }),
            };
            let name = text(&el, "Name").map(|n| n.trim().to_string()).filter(|n| !n.is_empty());
            let existing = match id {
                Some(id) => match tenant.contact_by_id.get(&id) {
                    Some(&i) if create_only => {
                        errors.push(format!("A contact with ContactID {id} already exists; use POST to update it"));
                        Some(i)
                    }
                    Some(&i) => Some(i),
                    None => {
                        errors.push(format!("Contact with ContactID {id} could not be found"));
                        None
                    }
                },
                None => match &name {
                    Some(n) if !create_only => tenant
                        .contact_by_name(n)
                        .and_then(|c| tenant.contact_by_id.get(&c.id).copied()),
                    _ => None,
                },
            };
            if existing.is_none() && id.is_none() {
                match &name {
                    None => errors.push("A contact name must be specified".into()),
                    Some(n) => {
                        if tenant.contact_by_name(n).is_some() || batch_names.contains(&n.to_lowercase()) {
                            errors.push(format!(
                                "The contact name {n} is already assigned to another contact. The contact name must be unique across all active contacts."
                            ));
                        }
                    }
                }
            }
            let status = text(&el, "ContactStatus").map(|s| s.to_ascii_uppercase());
            if let Some(s) = &status {
                if s != "ACTIVE" && s != "ARCHIVED" {
                    errors.push(format!("ContactStatus '{s}' is not valid; use ACTIVE or ARCHIVED"));
                }
            }
            if let (Some(i), Some(n)) = (existing, &name) {
                let clash = tenant.contact_by_name(n).is_some_and(|c| c.id != tenant.contacts[i].id);
                if clash {
                    errors.push(format!(
                        "The contact name {n} is already assigned to another contact. The contact name must be unique across all active contacts."
                    ));
                }
            }
            if !errors.is_empty() {
                return Err(failed_element(el, "ContactID", &errors));
            }
            let base = existing.map(|i| tenant.contacts[i].clone()).unwrap_or_else(|| Contact {
                id: Uuid::new_v4(),
                name: String::new(),
                contact_number: None,
                first_name: None,
                last_name: None,
                email: None,
                status: "ACTIVE".into(),
                is_customer: false,
                is_supplier: false,
                updated: ctx.now,
            });
            let keep = |name: &str, old: Option<String>| text(&el, name).or(old);
            let contact = Contact {
                name: name.clone().unwrap_or(base.name.clone()),
                contact_number: keep("ContactNumber", base.contact_number.clone()),
                first_name: keep("FirstName", base.first_name.clone()),
                last_name: keep("LastName", base.last_name.clone()),
                email: keep("EmailAddress", base.email.clone()),
                status: status.unwrap_or(base.status.clone()),
                updated: ctx.now,
                ..base
            };
            batch_names.insert(contact.name.to_lowercase());
            Ok(match existing {
                Some(i) => Plan::Update(i, contact),
                None => Plan::Create(contact),
            })
        })
        .collect();
    if ctx.summarize_errors() && plans.iter().any(Result::is_err) {
        return batch_reply(
            ctx,
            "Contacts",
            plans.into_iter().map(|p| p.map(|_| Value::Null)).collect(),
            Vec::new(),
        );
    }
    let mut events = Vec::new();
    let results = plans
        .into_iter()
        .map(|plan| {
            plan.map(|plan| match plan {
                Plan::Create(c) => {
                    events.push(Event::contact("CREATE", c.id));
                    let v = render::contact(&c);
                    tenant.add_contact(c);
                    v
                }
                Plan::Update(i, c) => {
                    events.push(Event::contact("UPDATE", c.id));
                    let v = render::contact(&c);
                    tenant.contacts[i] = c;
                    v
                }
            })
        })
        .collect();
    batch_reply(ctx, "Contacts", results, events)
}
