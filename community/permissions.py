"""The Django-admin permission group a centre admin gets. Which rows they may touch is decided by
scoping (community.selectors, applied in community.admin); this only says which kinds of rows."""

from django.contrib.auth.models import Group, Permission

CENTRE_ADMIN_GROUP = "Centre admins"

# app_label -> model -> actions. Apps added later extend this table with their own models.
CENTRE_ADMIN_PERMISSIONS = {
    "community": {
        "user": ["view", "add", "change"],
        "centre": ["view"],
        "propertycompany": ["view", "add", "change"],
        "ownerscommittee": ["view", "add", "change"],
        "allianceorganisation": ["view", "add", "change"],
        "community": ["view", "add", "change"],
        "building": ["view", "add", "change"],
        "household": ["view", "add", "change"],
        "residency": ["view", "add", "change", "delete"],
        "rolemembership": ["view", "add", "change", "delete"],
        "agreement": ["view", "add", "change"],
        # Community life. Sign-ups and check-ins only through their services; ballots not at
        # all (who voted how is the committee's to see, on the consultation's page).
        "announcement": ["view", "add", "change", "delete"],
        "activity": ["view", "add", "change"],
        "activitysignup": ["view"],
        "activitycheckin": ["view"],
        "consultation": ["view", "add", "change"],
        "consultationoption": ["view", "add", "change", "delete"],
        # Their centre's lines of the audit log, read-only (community.admin.AuditEntryAdmin).
        "auditentry": ["view"],
    },
    # Money rows are read-only in admin; "add" on payout/refund opens the run and refund forms,
    # "change" on bill allows waiving.
    "billing": {
        "bill": ["view", "change"],
        "payment": ["view"],
        "payout": ["view", "add"],
        "refund": ["view", "add"],
        "account": ["view"],
        "ledgertransaction": ["view"],
        # The desk's closed days are written by billing.desk only. "change" on reconciliation
        # allows fetching a day's statement again; its lines are the matcher's.
        "deskdayclose": ["view"],
        "reconciliation": ["view", "change"],
        "reconciliationline": ["view"],
        # Fee items and rules are the centre's to set for its estates (the rules for every
        # estate are a superuser's); readings are entered on the staff page or imported; a
        # bill line's "change" is the late-fee waiver (billing.charges_admin).
        "chargeitem": ["view", "add", "change"],
        "chargetier": ["view", "add", "change", "delete"],
        "chargesubscription": ["view", "add", "change", "delete"],
        "meterreading": ["view"],
        "latefeerule": ["view", "add", "change"],
        "prepaydiscountrule": ["view", "add", "change"],
        "billline": ["view", "change"],
    },
    # Ticket categories (with their SLA hours) are the centre's to set; tickets are read-only
    # in admin, their state moves only through repairs.services.
    "repairs": {
        "ticketcategory": ["view", "add", "change"],
        "ticket": ["view"],
    },
    # Ratings, inspections and scorecards are written by alliance.services; "change" on
    # scorecard allows finalizing, recomputing and revising (every field stays read-only).
    # The weights apply to every centre: a superuser edits them.
    "alliance": {
        "servicerating": ["view"],
        "inspection": ["view"],
        "scorecard": ["view", "change"],
        "scoreweight": ["view"],
    },
    # Earning rules and the rewards catalogue are the centre's to set; points entries and
    # balances are read-only (they move only through points.services); "change" on redemption
    # allows the cancel and mark-as-used actions.
    "points": {
        "rule": ["view", "add", "change"],
        "reward": ["view", "add", "change"],
        "redemption": ["view", "change"],
        "entry": ["view"],
        "balance": ["view"],
    },
}


def sync_role_groups(**kwargs) -> None:
    """Create or update the centre admins' group with exactly the permissions above (idempotent)."""
    group, _ = Group.objects.get_or_create(name=CENTRE_ADMIN_GROUP)
    wanted = []
    for app_label, models in CENTRE_ADMIN_PERMISSIONS.items():
        for model, actions in models.items():
            codenames = [f"{action}_{model}" for action in actions]
            found = Permission.objects.filter(
                content_type__app_label=app_label, content_type__model=model, codename__in=codenames
            )
            wanted.extend(found)
    group.permissions.set(wanted)
