//! How the wire types are described in OpenAPI, where a derive cannot say it: an amount is a plain
//! decimal, as a string or a JSON number. The field constraints (lengths, patterns) sit on the
//! types themselves, and say exactly what `validate` enforces, so the description neither promises
//! more than the proxy takes nor hides what it refuses.

use utoipa::openapi::schema::{ObjectBuilder, OneOfBuilder, Schema, Type};
use utoipa::openapi::RefOr;

/// An amount: a plain decimal (`-?\d+(\.\d+)?`), written as a string (what the proxy sends) or
/// a JSON number with the same digits.
pub struct PlainDecimal;

impl utoipa::PartialSchema for PlainDecimal {
    fn schema() -> RefOr<Schema> {
        RefOr::T(Schema::OneOf(
            OneOfBuilder::new()
                .item(
                    ObjectBuilder::new()
                        .schema_type(Type::String)
                        .pattern(Some(r"^-?[0-9]+(\.[0-9]+)?$"))
                        .examples(["12.50"]),
                )
                .item(ObjectBuilder::new().schema_type(Type::Number))
                .description(Some(
                    "A plain decimal: digits, an optional leading minus and decimal point; no exponent",
                ))
                .build(),
        ))
    }
}

impl utoipa::ToSchema for PlainDecimal {}
