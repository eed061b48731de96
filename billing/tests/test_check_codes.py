"""The ledger's hash chain and the receipts' check codes (billing/chain.py)."""

import pytest
from django.conf import settings
from django.db import connection
from django.test import Client, override_settings

from billing import chain, services
from billing.models import LedgerChainLink, LedgerTransaction
from billing.selectors import ledger_problems
from billing.tests.factories import BillFactory, desk_pay, estate, pay
from community.models import Role
from community.periods import Period
from community.tests.factories import member, resident

pytestmark = pytest.mark.django_db


@pytest.fixture
def paid():
    community, (home, other) = estate(2, name="翰林苑")
    user = resident(home, user__first_name="张三")
    payment = pay(user, [BillFactory(household=home, period="2019-08")])
    return {"community": community, "home": home, "other": other, "payment": payment}


def test_every_posting_joins_the_chain_in_order(paid):
    services.payout_run(community=paid["community"], period=Period(2019, 8))
    links = list(LedgerChainLink.objects.order_by("seq").select_related("transaction"))
    assert [link.seq for link in links] == [1, 2]
    assert [link.transaction.kind for link in links] == ["payment", "payout"]
    previous = chain.GENESIS
    for link in links:
        postings = link.transaction.postings.values_list("account__key", "amount")
        text = chain.canonical(
            idempotency_key=link.transaction.idempotency_key,
            created_at=link.transaction.created_at,
            postings=list(postings),
        )
        assert link.hash == chain.link_hash(previous, text)
        assert link.check_code == chain.check_code_of(link.hash)
        previous = link.hash
    assert ledger_problems() == []


def test_a_tampered_hash_is_found(paid):
    services.payout_run(community=paid["community"], period=Period(2019, 8))
    first = LedgerChainLink.objects.get(seq=1)
    LedgerChainLink.objects.filter(pk=first.pk).update(hash="f" * 64)
    problems = ledger_problems()
    assert problems == [
        f"chain: transaction {first.transaction.idempotency_key} (link 1) does not match its hash"
    ]
    # Put it back: the ledger is sound again (and conftest's check after the test passes).
    LedgerChainLink.objects.filter(pk=first.pk).update(hash=first.hash)
    assert ledger_problems() == []


def test_a_missing_link_and_an_unchained_transaction_are_found(paid):
    link = LedgerChainLink.objects.get()
    key = link.transaction.idempotency_key
    LedgerChainLink.objects.filter(pk=link.pk).delete()
    assert ledger_problems() == [f"chain: transaction {key} is not on the chain"]
    # What the migration (and bench/datagen.py) do for rows written outside ledger.post.
    assert chain.chain_unchained() == 1
    assert ledger_problems() == []
    assert LedgerChainLink.objects.get().hash == link.hash


def test_a_check_code_verifies_and_shows_no_personal_data(paid):
    payment = paid["payment"]
    code = chain.payment_check_code(payment)
    assert len(code) == 11 and code[5] == "-"
    result = chain.receipt_check(code)
    assert result == {
        "code": code,
        "amount": payment.amount,
        "estate": "翰林苑",
        "periods": ["2019-08"],
    }
    # Typed loosely: lower case, no dash, spaces.
    assert chain.receipt_check(f" {code.replace('-', '').lower()} ") == result

    client = Client()
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = "en"
    response = client.get("/api/v1/receipts/check/", {"code": code})
    assert response.status_code == 200
    assert response.json() == {
        "valid": True,
        "code": code,
        "amount": f"{payment.amount:.2f}",
        "estate": "翰林苑",
        "periods": ["2019-08"],
    }
    page = client.get("/check/", {"code": code})
    assert page.status_code == 200
    body = page.content.decode()
    assert 'data-check-result="valid"' in body
    assert f"{payment.amount:.2f}" in body
    household = paid["home"]
    # (The code itself is echoed; a short unit number could be part of it by chance.)
    shown = body.replace(code, "") + response.content.decode().replace(code, "")
    for secret in ("张三", household.unit, household.building.name, payment.out_trade_no):
        assert secret not in shown


@pytest.mark.parametrize("code", ["AAAAA-AAAAA", "ABC", "", "!!!!!-!!!!!"])
def test_a_wrong_code_does_not_verify(paid, code):
    real = chain.payment_check_code(paid["payment"]).replace("-", "")
    if code == "AAAAA-AAAAA" and real == "AAAAAAAAAA":
        code = "BBBBB-BBBBB"
    assert chain.receipt_check(code) is None
    client = Client()
    page = client.get("/check/", {"code": code})
    assert page.status_code == 200
    if code:
        assert 'data-check-result="invalid"' in page.content.decode()
        api = client.get("/api/v1/receipts/check/", {"code": code})
        assert (api.status_code, api.json()) == (200, {"valid": False})


def test_a_payout_code_is_not_a_receipt(paid):
    services.payout_run(community=paid["community"], period=Period(2019, 8))
    payout_link = LedgerChainLink.objects.get(transaction__kind="payout")
    assert chain.receipt_check(payout_link.check_code) is None


def test_receipts_show_their_check_code(paid, client):
    payment = paid["payment"]
    code = chain.payment_check_code(payment)
    client.force_login(payment.payer)
    page = client.get(f"/payments/{payment.pk}/receipt/")
    assert page.status_code == 200
    assert f"<code data-check-code>{code}</code>" in page.content.decode()


def test_the_desk_receipt_shows_its_check_code(client):
    community, (home,) = estate(1)
    resident(home)
    cashier = member(Role.CENTRE_ADMIN, centre=community.centre)
    payment = desk_pay(cashier, [BillFactory(household=home, period="2019-08")])
    code = chain.payment_check_code(payment)
    assert code
    client.force_login(cashier)
    page = client.get(f"/desk/receipts/{payment.pk}/")
    assert page.status_code == 200
    assert f"<code data-check-code>{code}</code>" in page.content.decode()


@override_settings(RECEIPT_CHECK_THROTTLE_RATE="3/min")
def test_checking_is_rate_limited(paid):
    from django.core.cache import cache

    cache.clear()
    client = Client()
    statuses = [
        client.get("/api/v1/receipts/check/", {"code": "AAAAA-AAAAA"}).status_code for _ in range(4)
    ]
    assert statuses == [200, 200, 200, 429]
    assert client.get("/check/", {"code": "AAAAA-AAAAA"}).status_code == 429
    cache.clear()


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_payments_chain_one_after_the_other():
    import threading

    _community, homes = estate(4)
    users = [resident(home) for home in homes]
    bills = [BillFactory(household=home, period="2019-08") for home in homes]
    barrier = threading.Barrier(len(users))
    errors = []

    def run(user, bill):
        try:
            barrier.wait()
            pay(user, [bill])
        except Exception as exc:
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=pair) for pair in zip(users, bills, strict=True)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert list(LedgerChainLink.objects.order_by("seq").values_list("seq", flat=True)) == [
        1,
        2,
        3,
        4,
    ]
    assert LedgerTransaction.objects.count() == 4
    assert ledger_problems() == []
