"""Payouts, hold-back releases, refunds, the trail and the escrow summary, on a worked example.

The estate: a 10% hold-back. Two bills of 2019-08, 120.00 and 121.20 yuan, paid together.
"""

from decimal import Decimal
from unittest import mock

import pytest

from billing import selectors, services, tasks
from billing.models import Account, LedgerTransaction, Payout, Posting, Refund
from billing.tests.factories import BillFactory, estate, pay
from community.models import Role
from community.periods import Period
from community.tests.factories import member, resident

pytestmark = pytest.mark.django_db

AUGUST = Period(2019, 8)


@pytest.fixture
def paid():
    community, (home, other) = estate(2)
    user = resident(home)
    bills = [
        BillFactory(household=home, period="2019-08", amount=Decimal("120.00")),
        BillFactory(household=home, period="2019-09", amount=Decimal("121.20")),
    ]
    payment = pay(user, bills)
    admin = member(Role.CENTRE_ADMIN, centre=community.centre)
    return {
        "community": community,
        "payment": payment,
        "bills": bills,
        "user": user,
        "admin": admin,
        "other": other,
    }


def balances(community):
    return {
        kind: -balance
        for kind, balance in Account.objects.filter(community=community).values_list(
            "kind", "balance"
        )
    }


def test_payout_pays_the_company_its_share_of_the_month(paid):
    payout, created = services.payout_run(community=paid["community"], period=AUGUST)
    assert created
    # Only August's bill is paid out; September's (prepaid) waits for September.
    assert (payout.collected, payout.to_company, payout.held_back) == (
        Decimal("120.00"),
        Decimal("108.00"),
        Decimal("12.00"),
    )
    assert balances(paid["community"]) == {
        "escrow": Decimal("133.20"),  # 12.00 held back + 121.20 for September
        "company_payable": Decimal("108.00"),
    }


def test_running_a_payout_twice_pays_once(paid, as_user):
    client = as_user(paid["admin"])
    body = {"community": paid["community"].pk, "period": "2019-08"}
    first = client.post("/api/v1/payouts/run/", body, format="json")
    second = client.post("/api/v1/payouts/run/", body, format="json")
    assert (first.status_code, second.status_code) == (201, 200)
    assert first.json()["id"] == second.json()["id"]
    assert first.json()["to_company"] == "108.00"
    assert LedgerTransaction.objects.filter(kind="payout").count() == 1


@pytest.mark.parametrize(
    ("body", "status"),
    [({"community": 0, "period": "2019-08"}, 404), ({"period": "2019-08"}, 400)],
)
def test_payout_bad_requests(paid, as_user, body, status):
    response = as_user(paid["admin"]).post("/api/v1/payouts/run/", body, format="json")
    assert response.status_code == status
    assert Payout.objects.count() == 0


def test_payout_of_an_unfinished_month_is_refused(paid, as_user):
    body = {"community": paid["community"].pk, "period": str(Period.current())}
    response = as_user(paid["admin"]).post("/api/v1/payouts/run/", body, format="json")
    assert response.status_code == 400
    assert Payout.objects.count() == 0


def test_only_the_centre_admin_runs_payouts(paid, as_user):
    body = {"community": paid["community"].pk, "period": "2019-08"}
    assert (
        as_user(paid["user"]).post("/api/v1/payouts/run/", body, format="json").status_code == 403
    )
    outsider = member(Role.CENTRE_ADMIN, centre=estate(1)[0].centre)
    assert as_user(outsider).post("/api/v1/payouts/run/", body, format="json").status_code == 404
    assert Payout.objects.count() == 0


def test_a_payout_task_that_fails_midway_posts_nothing_and_the_rerun_completes(paid):
    with (
        mock.patch("billing.ledger.post", side_effect=RuntimeError("worker died")),
        pytest.raises(RuntimeError),
    ):
        tasks.run_payout.apply(args=[paid["community"].pk, "2019-08"], throw=True, retries=5)
    assert Payout.objects.count() == 0
    assert not LedgerTransaction.objects.filter(kind="payout").exists()
    assert paid["payment"].items.filter(payout__isnull=False).count() == 0

    tasks.run_payout.apply(args=[paid["community"].pk, "2019-08"], throw=True)
    assert Payout.objects.get().to_company == Decimal("108.00")


def test_release_splits_the_hold_back_by_score(paid):
    services.payout_run(community=paid["community"], period=AUGUST)
    release, created = services.release_holdback(
        community=paid["community"], period=AUGUST, score=Decimal("0.85")
    )
    again, created_again = services.release_holdback(
        community=paid["community"], period=AUGUST, score=Decimal("0.10")
    )
    assert (created, created_again) == (True, False)
    assert again.pk == release.pk
    # 12.00 held back: 85% = 10.20 to the company, 1.80 to the public fund.
    assert (release.to_company, release.to_public_fund) == (Decimal("10.20"), Decimal("1.80"))
    assert balances(paid["community"]) == {
        "escrow": Decimal("121.20"),
        "company_payable": Decimal("118.20"),
        "public_fund": Decimal("1.80"),
    }


def test_release_needs_a_payout_and_a_score_between_0_and_1(paid):
    from django.core.exceptions import ValidationError

    from config.api import Conflict

    with pytest.raises(Conflict):
        services.release_holdback(community=paid["community"], period=AUGUST, score=Decimal(1))
    services.payout_run(community=paid["community"], period=AUGUST)
    with pytest.raises(ValidationError):
        services.release_holdback(community=paid["community"], period=AUGUST, score=Decimal("1.01"))
    assert not Payout.objects.filter(kind="holdback_release").exists()


def refund(client, payment, amount, key="r1", reason="搬家"):
    return client.post(
        f"/api/v1/payments/{payment.pk}/refund/",
        {"amount": amount, "reason": reason},
        format="json",
        HTTP_IDEMPOTENCY_KEY=key,
    )


def test_refund_while_held_comes_from_escrow(paid, as_user):
    response = refund(as_user(paid["admin"]), paid["payment"], "121.20")
    assert response.status_code == 201
    assert (response.json()["from_escrow"], response.json()["from_company"]) == ("121.20", "0.00")
    september = paid["bills"][1]
    september.refresh_from_db()
    assert (september.status, september.paid_amount) == ("unpaid", 0)
    assert balances(paid["community"])["escrow"] == Decimal("120.00")


def test_a_full_refund_after_the_payout_takes_back_the_company_share_and_the_held_back(
    paid, as_user
):
    services.payout_run(community=paid["community"], period=AUGUST)
    client = as_user(paid["admin"])
    # 241.20 refund: September's 121.20 from escrow, then August's 108.00 from the company
    # payable and its 12.00 held back from escrow.
    response = refund(client, paid["payment"], "241.20")
    assert response.status_code == 201
    assert (response.json()["from_escrow"], response.json()["from_company"]) == ("133.20", "108.00")
    paid["payment"].refresh_from_db()
    assert paid["payment"].status == "refunded"
    assert balances(paid["community"]) == {
        "escrow": Decimal("0.00"),
        "company_payable": Decimal("0.00"),
    }


def test_a_partial_refund_after_the_payout_is_split_in_proportion_not_held_back_first(
    paid, as_user
):
    services.payout_run(community=paid["community"], period=AUGUST)
    # 131.20: September's 121.20 from escrow, then 10.00 of August, which went 108.00 to the
    # company and 12.00 held back: 9.00 from the company, 1.00 from the hold-back.
    response = refund(as_user(paid["admin"]), paid["payment"], "131.20")

    assert response.status_code == 201
    assert (response.json()["from_escrow"], response.json()["from_company"]) == ("122.20", "9.00")
    august = paid["payment"].items.get(bill__period="2019-08")
    assert (august.held_back, august.refunded_from_company) == (Decimal("11.00"), Decimal("9.00"))
    # The score still decides what the company gets of what is held back.
    release, _ = services.release_holdback(
        community=paid["community"], period=AUGUST, score=Decimal("0.85")
    )
    assert (release.held_back, release.to_company, release.to_public_fund) == (
        Decimal("11.00"),
        Decimal("9.35"),
        Decimal("1.65"),
    )


def test_a_refund_after_the_release_takes_back_from_the_company_and_the_public_fund(paid, as_user):
    services.payout_run(community=paid["community"], period=AUGUST)
    services.release_holdback(community=paid["community"], period=AUGUST, score=Decimal("0.85"))
    # August went 118.20 to the company (108.00 + 10.20 released) and 1.80 to the fund.
    client = as_user(paid["admin"])

    half = refund(client, paid["payment"], "181.20", key="half")  # September + 60.00 of August

    assert half.status_code == 201
    assert {k: half.json()[k] for k in ("from_escrow", "from_company")} == {
        "from_escrow": "121.20",
        "from_company": "59.10",
    }
    assert Refund.objects.get().from_fund == Decimal("0.90")
    rest = refund(client, paid["payment"], "60.00", key="rest")
    assert rest.status_code == 201
    assert balances(paid["community"]) == {
        "escrow": Decimal("0.00"),
        "company_payable": Decimal("0.00"),
        "public_fund": Decimal("0.00"),
    }
    august = paid["payment"].items.get(bill__period="2019-08")
    trail = selectors.whereabouts(august)
    assert (trail.paid_to_company, trail.forfeited_to_fund, trail.refunded) == (
        Decimal("0.00"),
        Decimal("0.00"),
        Decimal("120.00"),
    )


def test_over_refund_is_409_and_changes_nothing(paid, as_user):
    client = as_user(paid["admin"])
    assert refund(client, paid["payment"], "241.21").status_code == 409
    assert refund(client, paid["payment"], "200.00", key="a").status_code == 201
    assert refund(client, paid["payment"], "41.21", key="b").status_code == 409
    paid["payment"].refresh_from_db()
    assert paid["payment"].refunded_amount == Decimal("200.00")
    assert LedgerTransaction.objects.filter(kind="refund").count() == 1


def test_refund_idempotency(paid, as_user):
    client = as_user(paid["admin"])
    first = refund(client, paid["payment"], "10.00", key="same")
    again = refund(client, paid["payment"], "10.00", key="same")
    other = refund(client, paid["payment"], "11.00", key="same")
    assert (first.status_code, again.status_code, other.status_code) == (201, 201, 409)
    assert first.json() == again.json()
    assert LedgerTransaction.objects.filter(kind="refund").count() == 1


@pytest.mark.server_error_expected
def test_a_retry_after_our_commit_failed_sends_the_gateway_the_same_refund_number(paid, as_user):
    # The gateway refunded, then our transaction failed: the client's retry with the same
    # Idempotency-Key must reach the gateway as the same refund, or the payer is paid twice.
    from billing.gateways import sandbox

    client = as_user(paid["admin"])
    sent = []
    real_refund = sandbox.SandboxGateway.refund

    def recording_refund(self, **kwargs):
        sent.append(kwargs["refund_no"])
        return real_refund(self, **kwargs)

    with (
        mock.patch.object(sandbox.SandboxGateway, "refund", recording_refund),
        mock.patch(
            "billing.services.audit.record", side_effect=[RuntimeError("db gone"), None, None]
        ),
    ):
        with pytest.raises(RuntimeError):
            refund(client, paid["payment"], "10.00", key="retry-me")
        assert refund(client, paid["payment"], "10.00", key="retry-me").status_code == 201
        other = refund(client, paid["payment"], "10.00", key="another")
    assert len(sent) == 3 and sent[0] == sent[1] != sent[2]
    assert other.status_code == 201
    assert LedgerTransaction.objects.filter(kind="refund").count() == 2


@pytest.mark.parametrize("amount", ["0", "-5", "abc", "1.234"])
def test_refund_bad_amounts_are_400(paid, as_user, amount):
    assert refund(as_user(paid["admin"]), paid["payment"], amount).status_code == 400
    assert LedgerTransaction.objects.filter(kind="refund").count() == 0


def test_only_the_centre_admin_refunds(paid, as_user):
    assert refund(as_user(paid["user"]), paid["payment"], "1.00").status_code == 403
    stranger = resident(paid["other"])
    assert refund(as_user(stranger), paid["payment"], "1.00").status_code == 404
    assert not LedgerTransaction.objects.filter(kind="refund").exists()


def test_trail_follows_each_bill_to_where_its_money_is(paid, as_user):
    services.payout_run(community=paid["community"], period=AUGUST)
    services.release_holdback(community=paid["community"], period=AUGUST, score=Decimal("0.85"))
    refund(as_user(paid["admin"]), paid["payment"], "21.20")

    body = as_user(paid["user"]).get(f"/api/v1/payments/{paid['payment'].pk}/trail/").json()

    by_period = {item["period"]: item for item in body["items"]}
    assert by_period["2019-08"] == {
        "bill": paid["bills"][0].pk,
        "period": "2019-08",
        "amount": "120.00",
        "held_in_escrow": "0.00",
        "held_back": "0.00",
        "paid_to_company": "118.20",
        "forfeited_to_fund": "1.80",
        "refunded": "0.00",
    }
    assert by_period["2019-09"]["held_in_escrow"] == "100.00"
    assert by_period["2019-09"]["refunded"] == "21.20"
    kinds = [step["kind"] for step in body["steps"]]
    assert kinds.count("received") == 2
    assert {"paid_out", "released", "forfeited", "refunded"} <= set(kinds)


def test_escrow_summary_adds_up(paid, as_user):
    services.payout_run(community=paid["community"], period=AUGUST)
    refund(as_user(paid["admin"]), paid["payment"], "21.20")
    committee = member(Role.COMMITTEE_MEMBER, community=paid["community"])

    body = as_user(committee).get(f"/api/v1/communities/{paid['community'].pk}/escrow/").json()

    assert body == {
        "held": "112.00",
        "released": "108.00",
        "withheld": "12.00",
        "forfeited_to_fund": "0.00",
        "refunded": "21.20",
    }
    total = sum(Decimal(body[k]) for k in ("held", "released", "forfeited_to_fund", "refunded"))
    assert total == paid["payment"].amount
    summary = selectors.escrow_summary(community=paid["community"])
    assert summary["held"] == Decimal("112.00")


def test_escrow_summary_scope(paid, as_user):
    url = f"/api/v1/communities/{paid['community'].pk}/escrow/"
    assert as_user(paid["admin"]).get(url).status_code == 200
    assert as_user(paid["user"]).get(url).status_code == 403  # a resident of the estate
    outsider = member(Role.COMMITTEE_MEMBER, community=estate(1)[0])
    assert as_user(outsider).get(url).status_code == 404


def test_postings_are_append_only_in_the_model(paid):
    from django.core.exceptions import ValidationError

    posting = Posting.objects.first()
    with pytest.raises(ValidationError):
        posting.save()
    with pytest.raises(ValidationError):
        posting.delete()
