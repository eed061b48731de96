"""The per-estate, per-month summary the dashboards read instead of counting every bill and
ticket (community/summaries.py keeps it).

Design overview
- One row per (community, period "YYYY-MM"), unique. It holds counts only, exactly what
  alliance.kpis needs: the month's bills due and paid, and the handling figures of the tickets
  filed in the month (by the filing instant in the project's time zone).
- The writes that change those counts add their difference to the row in the same transaction
  (billing: the bill run, prepaid bills, payments, refunds, waivers, charge lines that change a
  bill's status; repairs: filing, transitions, escalation, rating), each as one upsert
  (INSERT ... ON CONFLICT DO UPDATE SET n = n + excluded.n), so two writers at once both count.
- alliance.summary.summary_rebuild() (manage.py summary_rebuild) recounts every row from the
  bills and tickets: for data written around the services (bench/datagen.py), and to check.
"""

from django.db import models


class EstateMonth(models.Model):
    community = models.ForeignKey(
        "community.Community", on_delete=models.CASCADE, related_name="+", db_index=False
    )
    period = models.CharField(max_length=7)
    # Bills of the month that are owed (not waived or void), and of those the ones paid in full.
    bills_due = models.BigIntegerField(default=0)
    bills_paid = models.BigIntegerField(default=0)
    # Tickets filed in the month, except cancelled ones (repairs.selectors.handling_figures).
    tickets_total = models.BigIntegerField(default=0)
    tickets_handled = models.BigIntegerField(default=0)
    tickets_handled_within_sla = models.BigIntegerField(default=0)
    tickets_rated = models.BigIntegerField(default=0)
    tickets_satisfied = models.BigIntegerField(default=0)
    # The sum of the stars of the rated ones: the average is tickets_stars / tickets_rated.
    tickets_stars = models.BigIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["community", "period"], name="estatemonth_unique")
        ]

    def __str__(self) -> str:
        return f"{self.community_id} {self.period}"
