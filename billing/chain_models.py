"""The ledger's hash chain (billing/chain.py): one link per ledger transaction, in order."""

from django.db import models
from django.utils.translation import gettext_lazy as _


class LedgerChainLink(models.Model):
    """Link `seq` of the chain: hash = SHA-256(the previous link's hash, this transaction's
    postings). `check_code` is the first 10 base32 characters of the hash, what a receipt shows
    and /check/ looks up. Kept beside the transaction rather than on it: a ledger transaction
    row is append-only (migration 0004) and its hash is known only once its postings are."""

    transaction = models.OneToOneField(
        to="billing.LedgerTransaction",
        on_delete=models.PROTECT,
        primary_key=True,
        related_name="chain_link",
    )
    seq = models.PositiveBigIntegerField(unique=True)
    hash = models.CharField(max_length=64)
    check_code = models.CharField(_("check code"), max_length=10, db_index=True)

    class Meta:
        verbose_name = _("ledger chain link")
        verbose_name_plural = _("ledger chain links")
        ordering = ["seq"]

    def __str__(self) -> str:
        return f"{self.seq} {self.hash[:12]}"
