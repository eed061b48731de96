"""Spending the community public fund only as its owners vote (billing/public_fund.py).

The estate: two owners' flats (100 m² and 101 m²), a 10% hold-back; both flats paid August
2019 (120.00 + 121.20), the month was paid out and its hold-back forfeited in full (score 0),
so the public fund holds 24.12.
"""

import threading
from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import DatabaseError, connection, transaction
from django.utils import timezone
from django.utils.translation import override

from billing import ledger, public_fund, selectors, services
from billing.models import Account, LedgerTransaction, Posting, PublicFundSpend
from billing.tests.factories import BillFactory, estate, pay
from community.models import AuditEntry, Role
from community.periods import Period
from community.services import consultation_vote
from community.tests.factories import CentreFactory, member, resident

pytestmark = pytest.mark.django_db

AUGUST = Period(2019, 8)
FUND = Decimal("24.12")


def _fund_estate():
    community, homes = estate(2)
    owners = [resident(home) for home in homes]
    for owner, home in zip(owners, homes, strict=True):
        pay(owner, [BillFactory(household=home, period="2019-08")])
    services.payout_run(community=community, period=AUGUST)
    services.release_holdback(community=community, period=AUGUST, score=Decimal("0"))
    return {
        "community": community,
        "owners": owners,
        "admin": member(Role.CENTRE_ADMIN, centre=community.centre),
        "committee": member(Role.COMMITTEE_MEMBER, community=community),
    }


@pytest.fixture
def fund():
    return _fund_estate()


def propose(fund, amount="20.00", *, closed=True):
    """A proposal whose vote ran from 10 days ago to yesterday (closed) or runs until tomorrow."""
    now = timezone.now()
    return public_fund.public_fund_spend_propose(
        creator=fund["committee"],
        community=fund["community"],
        amount=Decimal(amount),
        payee_name="绿化公司",
        payee_account="工商银行 6222 0000",
        purpose="更换中心花园的树木",
        opens_at=now - timedelta(days=10),
        closes_at=now - timedelta(days=1) if closed else now + timedelta(days=1),
        at=now - timedelta(days=11),
    )


def vote(spend, choices):
    """Each owner votes in turn: "agree", "disagree" or "abstain" (options by position)."""
    consultation = spend.consultation
    options = list(consultation.options.order_by("position"))
    index = {"agree": 0, "disagree": 1, "abstain": 2}
    for owner, choice in choices:
        consultation_vote(
            consultation=consultation,
            user=owner,
            option=options[index[choice]],
            at=consultation.opens_at + timedelta(hours=1),
        )


def passed(fund, amount="20.00"):
    spend = propose(fund, amount)
    vote(spend, [(owner, "agree") for owner in fund["owners"]])
    return spend


def fund_balance(fund):
    return selectors.public_fund_balance(community=fund["community"])


def post_url(spend):
    return f"/api/v1/public-fund/spends/{spend.pk}/post/"


def test_the_proposal_opens_a_vote_with_the_thresholds_for_common_funds(fund):
    spend = propose(fund, closed=False)
    consultation = spend.consultation
    assert (consultation.approval_numerator, consultation.approval_denominator) == (3, 4)
    assert consultation.approval_inclusive is True
    assert (consultation.participation_numerator, consultation.participation_denominator) == (2, 3)
    assert consultation.participation_inclusive is True
    assert [o.approves for o in consultation.options.order_by("position")] == [True, False, False]
    assert spend.status == PublicFundSpend.Status.PROPOSED
    assert spend.community == consultation.community == fund["community"]


def test_a_passed_spending_is_paid_out_of_the_fund_once(fund, as_user):
    spend = passed(fund)
    assert fund_balance(fund) == FUND
    response = as_user(fund["admin"]).post(post_url(spend))
    assert response.status_code == 201, response.content
    assert response.json()["status"] == "spent"
    assert fund_balance(fund) == FUND - Decimal("20.00")
    entry = LedgerTransaction.objects.get(idempotency_key=f"fund-spend:{spend.pk}")
    assert entry.kind == LedgerTransaction.Kind.PUBLIC_FUND_SPEND
    assert sorted(entry.postings.values_list("account__key", "amount")) == sorted(
        [
            (f"public_fund:{fund['community'].pk}", Decimal("20.00")),
            (f"fund_paid_out:{fund['community'].pk}", Decimal("-20.00")),
        ]
    )
    spend.refresh_from_db()
    assert (spend.status, spend.ledger_transaction, spend.posted_by) == (
        PublicFundSpend.Status.SPENT,
        entry,
        fund["admin"],
    )
    audit = AuditEntry.objects.get(action=AuditEntry.Action.PUBLIC_FUND_SPEND)
    assert audit.centre_id == fund["community"].centre_id
    assert audit.details["amount"] == "20.00"

    again = as_user(fund["admin"]).post(post_url(spend))
    assert again.status_code == 409
    assert fund_balance(fund) == FUND - Decimal("20.00")
    assert LedgerTransaction.objects.filter(kind="public_fund_spend").count() == 1


def _nothing_written(fund, spend):
    spend.refresh_from_db()
    assert spend.status == PublicFundSpend.Status.PROPOSED
    assert spend.ledger_transaction is None
    assert fund_balance(fund) == FUND
    assert not LedgerTransaction.objects.filter(kind="public_fund_spend").exists()
    assert not AuditEntry.objects.filter(action=AuditEntry.Action.PUBLIC_FUND_SPEND).exists()


@pytest.mark.parametrize(
    "choices",
    [
        ["agree", "disagree"],  # half by heads: short of three quarters
        ["agree", "abstain"],
        ["agree"],  # half the households took part: short of two thirds
        [],
    ],
)
def test_a_spending_the_owners_did_not_pass_is_409_and_writes_nothing(fund, as_user, choices):
    spend = propose(fund)
    vote(spend, list(zip(fund["owners"], choices, strict=False)))
    response = as_user(fund["admin"]).post(post_url(spend))
    assert response.status_code == 409
    _nothing_written(fund, spend)


def test_a_spending_still_being_voted_on_is_409(fund, as_user):
    spend = propose(fund, closed=False)
    vote(spend, [(owner, "agree") for owner in fund["owners"]])
    assert as_user(fund["admin"]).post(post_url(spend)).status_code == 409
    _nothing_written(fund, spend)


def test_more_than_the_fund_holds_is_409_and_writes_nothing(fund, as_user):
    spend = passed(fund, amount="24.13")
    response = as_user(fund["admin"]).post(post_url(spend))
    assert response.status_code == 409
    _nothing_written(fund, spend)


def test_a_cancelled_spending_is_409(fund, as_user):
    spend = passed(fund)
    PublicFundSpend.objects.filter(pk=spend.pk).update(status=PublicFundSpend.Status.CANCELLED)
    assert as_user(fund["admin"]).post(post_url(spend)).status_code == 409
    assert fund_balance(fund) == FUND


def test_only_the_estates_centre_admin_posts(fund, as_user):
    spend = passed(fund)
    other_admin = member(Role.CENTRE_ADMIN, centre=CentreFactory())  # another centre
    assert as_user(other_admin).post(post_url(spend)).status_code == 404
    assert as_user(fund["owners"][0]).post(post_url(spend)).status_code == 403
    assert as_user(fund["committee"]).post(post_url(spend)).status_code == 403
    assert as_user(fund["admin"]).post("/api/v1/public-fund/spends/999999/post/").status_code == 404
    _nothing_written(fund, spend)


def test_the_committee_proposes_through_the_api(fund, as_user):
    now = timezone.now()
    body = {
        "amount": "10.50",
        "payee_name": "绿化公司",
        "payee_account": "工商银行 6222 0000",
        "purpose": "补种草坪",
        "opens_at": now.isoformat(),
        "closes_at": (now + timedelta(days=7)).isoformat(),
    }
    url = f"/api/v1/communities/{fund['community'].pk}/public-fund/spends/"
    response = as_user(fund["committee"]).post(url, body, format="json")
    assert response.status_code == 201, response.content
    spend = PublicFundSpend.objects.get(pk=response.json()["id"])
    assert spend.amount == Decimal("10.50")
    assert spend.consultation.approval_denominator == 4
    assert as_user(fund["owners"][0]).post(url, body, format="json").status_code == 403
    assert (
        as_user(member(Role.CENTRE_ADMIN, centre=CentreFactory()))
        .post(url, body, format="json")
        .status_code
        == 404
    )
    assert PublicFundSpend.objects.count() == 1
    bad = as_user(fund["admin"]).post(url, body | {"amount": "0"}, format="json")
    assert bad.status_code == 400


def test_the_service_messages(fund):
    spend = propose(fund, closed=False)
    with override("en"), pytest.raises(Exception, match="not finished voting"):
        public_fund.public_fund_spend_post(spend=spend, by=fund["admin"])
    with override("en"), pytest.raises(Exception, match="Only the centre admin"):
        public_fund.public_fund_spend_post(spend=spend, by=fund["committee"])


def test_the_public_page_selectors(fund, as_user):
    spent = passed(fund, amount="5.00")
    public_fund.public_fund_spend_post(spend=spent, by=fund["admin"])
    pending = propose(fund, amount="3.00", closed=False)
    cancelled = propose(fund, amount="1.00", closed=False)
    PublicFundSpend.objects.filter(pk=cancelled.pk).update(status="cancelled")
    assert fund_balance(fund) == FUND - Decimal("5.00")
    rows = selectors.public_fund_spends(community=fund["community"])
    assert [(r["id"], r["status"], r["amount"], r["passed"]) for r in rows] == [
        (pending.pk, "proposed", Decimal("3.00"), None),
        (spent.pk, "spent", Decimal("5.00"), True),
    ]
    assert rows[1]["posted_at"] is not None
    assert rows[1]["payee"] == "绿化公司"
    assert "payee_account" not in rows[1]

    response = as_user(fund["owners"][0]).get(
        f"/api/v1/communities/{fund['community'].pk}/public-fund/"
    )
    assert response.status_code == 200
    assert response.json()["balance"] == "19.12"
    assert [row["id"] for row in response.json()["spends"]] == [pending.pk, spent.pk]
    assert "工商银行" not in response.content.decode()


def test_an_empty_fund_reads_zero(fund):
    other, _homes = estate(1)
    assert selectors.public_fund_balance(community=other) == 0
    assert selectors.public_fund_spends(community=other) == []


def test_a_refund_after_the_release_still_takes_back_from_the_fund(fund):
    """The one other debit of the public fund (forfeited money refunded) stays allowed."""
    payment = fund["owners"][0].payments.get()
    refund, _ = services.payment_refund(
        payment=payment,
        amount=payment.amount,
        reason="搬家",
        by=fund["admin"],
        idempotency_key="r1",
        fingerprint="f",
    )
    assert refund.from_fund > 0
    assert fund_balance(fund) == FUND - refund.from_fund


# --- PostgreSQL: the database's own guard, and races --------------------------------------------


def _raw_debit_of_the_fund(fund, kind, key):
    """Post straight through the ledger, past billing.public_fund: what a careless script could."""
    community = fund["community"]
    with transaction.atomic():
        ledger.post(
            kind=kind,
            idempotency_key=key,
            legs=[
                ledger.Leg(ledger.public_fund_account(community), Decimal("1.00")),
                ledger.Leg(ledger.escrow_account(community), Decimal("-1.00")),
            ],
        )


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    "kind", [LedgerTransaction.Kind.PAYOUT, LedgerTransaction.Kind.PUBLIC_FUND_SPEND]
)
def test_the_database_refuses_any_other_debit_of_the_fund(kind):
    fund = _fund_estate()
    spend = propose(fund, amount="1.00", closed=False)
    key = f"fund-spend:{spend.pk}" if kind == "public_fund_spend" else "sneaky"
    with pytest.raises(DatabaseError) as caught:
        _raw_debit_of_the_fund(fund, kind, key)
    assert "spent only as its owners voted" in str(caught.value)
    assert fund_balance(fund) == FUND
    assert not LedgerTransaction.objects.filter(idempotency_key=key).exists()
    # Raw SQL fares no better than the ORM.
    account = Account.objects.get(key=f"public_fund:{fund['community'].pk}")
    release = LedgerTransaction.objects.get(kind="holdback_release")
    with pytest.raises(DatabaseError), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO billing_ledgertransaction (kind, idempotency_key, memo, created_at) "
            "VALUES ('payout', 'raw', '', now()) RETURNING id"
        )
        (entry_id,) = cursor.fetchone()
        cursor.execute(
            "INSERT INTO billing_posting (transaction_id, account_id, amount, created_at) "
            "VALUES (%s, %s, 1.00, now())",
            [entry_id, account.pk],
        )
    assert (
        Posting.objects.filter(account=account).count()
        == release.postings.filter(account=account).count()
    )


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_posts_at_once_pay_once():
    fund = _fund_estate()
    spend = passed(fund)
    outcomes, barrier = [], threading.Barrier(2)

    def post():
        try:
            barrier.wait()
            public_fund.public_fund_spend_post(spend=spend, by=fund["admin"])
            outcomes.append("paid")
        except Exception as exc:
            outcomes.append(type(exc).__name__)
        finally:
            connection.close()

    threads = [threading.Thread(target=post) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["Conflict", "paid"]
    assert fund_balance(fund) == FUND - Decimal("20.00")
    assert LedgerTransaction.objects.filter(kind="public_fund_spend").count() == 1
