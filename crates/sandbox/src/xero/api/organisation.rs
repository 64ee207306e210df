//! `GET /Organisation`, `GET /Accounts[/{id}]`, `GET /TaxRates`: what a mapping UI offers.

use super::{listing, render, Ctx, Reply};
use crate::xero::model::World;
use crate::xero::xjson::envelope;

pub fn organisation(ctx: &Ctx, world: &World) -> Reply {
    let tenant = world
        .tenant(ctx.tenant)
        .expect("the dispatcher checked the tenant");
    Reply::ok(envelope(
        ctx.provider(),
        ctx.now,
        "Organisations",
        vec![render::organisation(tenant)],
    ))
}

pub fn accounts(ctx: &Ctx, world: &World, id: Option<&str>) -> Result<Reply, Reply> {
    let tenant = world
        .tenant(ctx.tenant)
        .expect("the dispatcher checked the tenant");
    let mut items: Vec<_> = tenant.accounts.iter().collect();
    if let Some(id) = id {
        items.retain(|a| a.id.to_string().eq_ignore_ascii_case(id));
        if items.is_empty() {
            return Err(Reply::not_found());
        }
    }
    let rendered = items
        .into_iter()
        .map(|a| render::account(a, tenant.created))
        .collect();
    listing::list(ctx, "Accounts", rendered)
}

pub fn tax_rates(ctx: &Ctx, world: &World) -> Result<Reply, Reply> {
    let tenant = world
        .tenant(ctx.tenant)
        .expect("the dispatcher checked the tenant");
    let rendered = tenant.tax_rates.iter().map(render::tax_rate).collect();
    listing::list(ctx, "TaxRates", rendered)
}
