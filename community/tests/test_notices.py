import pytest
from django.core import mail
from django.urls import reverse

from community import services
from community.models import Notice
from community.tests.factories import HouseholdFactory, UserFactory, resident

pytestmark = pytest.mark.django_db


def test_a_notice_with_a_key_is_sent_once(django_capture_on_commit_callbacks):
    user = UserFactory(email="wang@example.org")
    with django_capture_on_commit_callbacks(execute=True):
        first, created = services.notice_send(user=user, title="账单逾期", dedupe_key="bill:1")
        again, created_again = services.notice_send(
            user=user, title="账单逾期", dedupe_key="bill:1"
        )
    assert (created, created_again) == (True, False)
    assert first.pk == again.pk
    assert Notice.objects.filter(user=user).count() == 1
    assert [m.subject for m in mail.outbox] == ["账单逾期"]


def test_no_mail_without_an_address(django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        services.notice_send(user=UserFactory(email=""), title="x")
    assert mail.outbox == []


def test_resident_sees_unread_notices_and_marks_them_read(client):
    user = resident(HouseholdFactory())
    other = UserFactory()
    services.notice_send(user=user, title="您的账单已逾期", link="/bills/")
    services.notice_send(user=other, title="别人的通知")
    client.force_login(user)

    home = client.get(reverse("resident-home")).content.decode()
    assert "您的账单已逾期" in home
    assert "别人的通知" not in home

    client.post(reverse("notices-mark-read"))
    assert Notice.objects.get(user=user).read_at is not None
    assert Notice.objects.get(user=other).read_at is None
    assert "您的账单已逾期" not in client.get(reverse("resident-home")).content.decode()
