//! The OpenAPI schemas of the event endpoints' bodies, exact: the server refuses members and
//! values these do not allow.

use utoipa::openapi::schema::{AdditionalProperties, ArrayBuilder, ObjectBuilder, Schema, SchemaType, Type};
use utoipa::openapi::RefOr;

use imds_model::event::{
    EventState, KindName, LifecycleState, MaintenanceCode, SpotAction, MAX_AHEAD_SECS, MAX_DESCRIPTION,
};

fn text(description: &str) -> ObjectBuilder {
    ObjectBuilder::new().schema_type(SchemaType::new(Type::String)).description(Some(description))
}

fn one_of(description: &str, names: impl IntoIterator<Item = &'static str>) -> ObjectBuilder {
    text(description).enum_values(Some(names))
}

fn time(description: &str) -> ObjectBuilder {
    text(description).format(Some(utoipa::openapi::SchemaFormat::KnownFormat(utoipa::openapi::KnownFormat::DateTime)))
}

fn seconds(description: &str, minimum: u64) -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(SchemaType::new(Type::Integer))
        .minimum(Some(minimum))
        .maximum(Some(MAX_AHEAD_SECS))
        .description(Some(description))
}

/// Which instances a `POST /v1/events` is for.
#[derive(Clone, Copy)]
enum Target {
    /// The path names the instance.
    Path,
    /// `selector`.
    Selector,
    /// `instances`.
    Instances,
}

/// One kind's request: its own detail member (required for a lifecycle state), the timing
/// members every kind has, and the target's member.
fn request(kind: KindName, target: Target) -> ObjectBuilder {
    let mut object = ObjectBuilder::new()
        .schema_type(SchemaType::new(Type::Object))
        .additional_properties(Some(AdditionalProperties::FreeForm(false)))
        .property("kind", one_of("What happens", [kind.as_str()]))
        .required("kind");
    object = match kind {
        KindName::SpotInterruption => object
            .property("action", one_of("What it does (default terminate)", SpotAction::ALL.iter().map(|a| a.as_str()))),
        KindName::ScheduledMaintenance => object.property(
            "code",
            one_of("EC2's code (default system-reboot)", MaintenanceCode::ALL.iter().map(|c| c.as_str())),
        ),
        KindName::TargetLifecycleState => object
            .property("lifecycle_state", one_of("The state", LifecycleState::ALL.iter().map(|s| s.as_str())))
            .required("lifecycle_state"),
        KindName::RebalanceRecommendation => object,
    };
    object = object
        .property("in_seconds", seconds("Takes effect this many seconds from now (default: 120 for spot-interruption, else now)", 0))
        .property("not_before", time("Takes effect at this time, RFC 3339 (not with in_seconds; not past for spot-interruption and scheduled-maintenance)"))
        .property("notice_seconds", seconds("Guests see it this long before it takes effect (defaults: spot 120, maintenance at once, others at their time)", 0))
        .property("duration_seconds", seconds("It ends this long after it takes effect (default: never)", 1))
        .property("description", text("Shown to guests (EC2 and Azure Description)").max_length(Some(MAX_DESCRIPTION)));
    match target {
        Target::Path => object,
        Target::Selector => object
            .property(
                "selector",
                text("`tag:KEY=VALUE` or `node:NAME`: every instance that matches now")
                    .pattern(Some("^(tag:[^=]+=.*|node:.+)$")),
            )
            .required("selector"),
        Target::Instances => object
            .property(
                "instances",
                ArrayBuilder::new()
                    .items(text("Instance id").pattern(Some("^(?!\\.)[A-Za-z0-9._:-]{1,128}$")))
                    .min_items(Some(1))
                    .unique_items(true)
                    .description(Some("These instances")),
            )
            .required("instances"),
    }
}

/// Every kind's request for `target`, one of which a body must be.
fn requests(targets: &[Target], description: &str) -> utoipa::openapi::schema::OneOfBuilder {
    let mut one_of = utoipa::openapi::schema::OneOfBuilder::new().description(Some(description));
    for target in targets {
        for kind in KindName::ALL {
            one_of = one_of.item(request(*kind, *target));
        }
    }
    one_of
}

macro_rules! schema {
    ($(#[$meta:meta])* $name:ident, $body:expr) => {
        $(#[$meta])*
        #[derive(Debug)]
        pub struct $name;

        impl utoipa::ToSchema for $name {}

        impl utoipa::PartialSchema for $name {
            fn schema() -> RefOr<Schema> {
                $body.into()
            }
        }
    };
}

schema!(
    /// The body of `POST /v1/instances/{id}/events`.
    EventRequest,
    requests(&[Target::Path], "An event of one kind, with that kind's members")
);

schema!(
    /// The body of `POST /v1/events`: an event request and whom it is for.
    SelectorRequest,
    requests(&[Target::Selector, Target::Instances], "An event of one kind, and a selector or a list of instances")
);

schema!(
    /// An event as the admin API returns it, its state as of the response.
    EventSchema,
    ObjectBuilder::new()
        .schema_type(SchemaType::new(Type::Object))
        .additional_properties(Some(AdditionalProperties::FreeForm(false)))
        .property("id", text("Event id").pattern(Some("^instance-event-[0-9a-f]{17}$")))
        .required("id")
        .property("instance", text("The instance it belongs to"))
        .required("instance")
        .property("kind", one_of("What happens", KindName::ALL.iter().map(|k| k.as_str())))
        .required("kind")
        .property("action", one_of("spot-interruption only", SpotAction::ALL.iter().map(|a| a.as_str())))
        .property("code", one_of("scheduled-maintenance only", MaintenanceCode::ALL.iter().map(|c| c.as_str())))
        .property("lifecycle_state", one_of("target-lifecycle-state only", LifecycleState::ALL.iter().map(|s| s.as_str())))
        .property("state", one_of("Its state now", EventState::ALL.iter().map(|s| s.as_str())))
        .required("state")
        .property("notice_at", time("From when guests see it"))
        .required("notice_at")
        .property("not_before", time("When it takes effect"))
        .required("not_before")
        .property("not_after", time("When it ends"))
        .property("description", text("Its description"))
        .property("created_at", time("When it was created"))
        .required("created_at")
        .property("started_at", time("When a guest started it early (Azure's approval)"))
        .property("canceled_at", time("When it was canceled"))
);
