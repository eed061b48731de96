"""The expected access matrix: for every URL name of config.urls, per method, one status per
role (the columns, in the order of tests/access/conftest.py ROLES):

    anon  anonymous                       stf   property staff of the managing company
    res   resident of "this" household    ostf  staff of another company
    nbr   another household, same estate  insp  alliance inspector of this centre
    oest  another estate, same centre     oins  alliance inspector of another centre
    com   committee of this estate        adm   centre admin of this centre
    ocom  committee of another estate     oadm  centre admin of another centre

Every URL names an object of "this" household or estate (see conftest.py). Tokens:

    200 201 204          done (a page rendered, an object created, nothing to return)
    302                  a page redirected after doing it (or to the right page)
    302!                 a page redirected back with an error message: refused in place, as the
                         pages do (already signed up, nothing to cancel, no points...)
    login                anonymous page request: 302 to the sign-in page
    400                  bad input; also where the body names an object outside the caller's scope:
                         the field error reads exactly as for an id that does not exist
    401                  anonymous API request
    403                  the object is in the caller's scope but the action is not theirs
    404                  the object is outside the caller's scope (never 403: nobody learns that
                         another household's or estate's records exist; community/selectors.py)
    405                  the method is not offered
    409                  allowed, but the object's state forbids it (already signed up...)

Rules the rows follow (community/selectors.py, repairs/selectors.py, API.md):
- residents see their own households and their estate's community life; a neighbour sees the
  estate's announcements, activities and consultations but not this household's bills, payments,
  tickets or ratings (404);
- property staff see the estates their company manages, with tickets; centre admins their
  centre's estates; inspectors their centre's estates but no households or tickets; committee
  members their estate's escrow, KPIs and scorecards, not its households' bills, payments or
  tickets;
- an action in scope but not the caller's (a resident accepting a ticket) is 403;
- pages a view offers only by POST answer 405 to GET; a page with a GET row only has no write
  handler (it renders, whatever the method, and changes nothing). An API row lists exactly the
  methods its view implements (test_every_url_has_rows checks it).
Residents may read their estate's KPIs and community dashboard (alliance/kpi_api.py
KPI_READER_ROLES): the estate's figures, never a household's.
"""

ROLE_COUNT = 12
TOKENS = frozenset(
    {"200", "201", "204", "302", "302!", "login", "400", "401", "403", "404", "405", "409"}
)

# URL patterns left out of the matrix, by route prefix, and why.
EXCLUDED = (
    # Django admin: ~270 generated patterns (changelist/add/change/delete/history per model).
    # Who may use it is decided by is_staff, the centre admins' permission group
    # (community/permissions.py) and the querysets scoped in each app's admin.py, which each
    # app's tests/test_admin.py checks. A few admin URLs are spot-checked in ADMIN_ROWS below.
    "admin/",
    # The OpenAPI document: public, the same for every caller, and generating it costs about
    # 1.5 s a request (a fifth of the whole matrix if asked by 12 roles). tests/test_api_schema.py
    # fetches it anonymously; its browsable page, api-docs, stays in the matrix.
    "api/schema/",
)

# fmt: off
MATRIX: dict[str, dict[str, str]] = {
    # --- Health, homes and notices (community pages) ---------------------------------------------
    #              anon  res   nbr   oest  stf   ostf  insp  oins  com   ocom  adm   oadm
    # Public: load balancers and monitors call it without signing in.
    "healthz": {
        "GET":    "200   200   200   200   200   200   200   200   200   200   200   200",
    },
    # Sends each person to their home page.
    "home": {
        "GET":    "login 302   302   302   302   302   302   302   302   302   302   302",
    },
    "resident-home": {
        "GET":    "login 200   200   200   200   200   200   200   200   200   200   200",
    },
    "staff-home": {
        "GET":    "login 200   200   200   200   200   200   200   200   200   200   200",
    },
    "notices": {
        "GET":    "login 200   200   200   200   200   200   200   200   200   200   200",
    },
    "notices-mark-read": {
        "GET":    "login 405   405   405   405   405   405   405   405   405   405   405",
        "POST":   "login 302   302   302   302   302   302   302   302   302   302   302",
    },
    # --- Announcements, activities, consultations (community pages) ------------------------------
    #              anon  res   nbr   oest  stf   ostf  insp  oins  com   ocom  adm   oadm
    "announcements": {
        "GET":    "login 200   200   200   200   200   200   200   200   200   200   200",
    },
    "announcement-new": {
        "GET":    "login 403   403   403   200   200   403   403   200   200   200   200",
        "POST":   "login 403   403   403   302   200   403   403   302   200   302   200",
    },
    "announcements-mark-read": {
        "GET":    "login 405   405   405   405   405   405   405   405   405   405   405",
        "POST":   "login 302   302   302   302   302   302   302   302   302   302   302",
    },
    "announcement-detail": {
        "GET":    "login 200   200   404   200   404   200   404   200   404   200   404",
    },
    "activities": {
        "GET":    "login 200   200   200   200   200   200   200   200   200   200   200",
    },
    "activity-new": {
        "GET":    "login 403   403   403   200   200   403   403   403   403   200   200",
        "POST":   "login 403   403   403   302   200   403   403   403   403   302   200",
    },
    "activity-detail": {
        "GET":    "login 200   200   404   200   404   200   404   200   404   200   404",
    },
    "activity-signup": {
        "GET":    "login 405   405   405   405   405   405   405   405   405   405   405",
        "POST":   "login 302!  302   404   302!  404   302!  404   302!  404   302!  404",
    },
    "activity-cancel": {
        "GET":    "login 405   405   405   405   405   405   405   405   405   405   405",
        "POST":   "login 302   302!  404   302!  404   302!  404   302!  404   302!  404",
    },
    "activity-checkin": {
        "GET":    "login 200   200   404   200   404   200   404   200   404   200   404",
        "POST":   "login 302   302   404   302!  404   302!  404   302!  404   302!  404",
    },
    "activity-manage": {
        "GET":    "login 403   403   404   200   404   403   404   403   404   200   404",
    },
    "activity-checkin-manual": {
        "GET":    "login 405   405   405   405   405   405   405   405   405   405   405",
        "POST":   "login 403   403   404   302   404   403   404   403   404   302   404",
    },
    "consultations": {
        "GET":    "login 200   200   200   200   200   200   200   200   200   200   200",
    },
    "consultation-new": {
        "GET":    "login 403   403   403   403   403   403   403   200   200   200   200",
        "POST":   "login 403   403   403   403   403   403   403   302   200   302   200",
    },
    "consultation-detail": {
        "GET":    "login 200   200   404   200   404   200   404   200   404   200   404",
    },
    "consultation-vote": {
        "GET":    "login 405   405   405   405   405   405   405   405   405   405   405",
        "POST":   "login 302   302   404   302!  404   302!  404   302!  404   302!  404",
    },
    # --- Bills and payments (billing pages) ------------------------------------------------------
    #              anon  res   nbr   oest  stf   ostf  insp  oins  com   ocom  adm   oadm
    "bill-list": {
        "GET":    "login 200   200   200   200   200   200   200   200   200   200   200",
    },
    # Paying another household's bill is 404, also for staff and admins (they never pay for a
    # resident).
    "bill-pay": {
        "GET":    "login 405   405   405   405   405   405   405   405   405   405   405",
        "POST":   "login 302   404   404   404   404   404   404   404   404   404   404",
    },
    # The household must be one of the caller's own: anyone else's form is refused in place.
    "bill-prepay": {
        "GET":    "login 405   405   405   405   405   405   405   405   405   405   405",
        "POST":   "login 302   302!  302!  302!  302!  302!  302!  302!  302!  302!  302!",
    },
    # The payer and their centre's admin (API.md: "payer, admin").
    "payment-detail-page": {
        "GET":    "login 200   404   404   404   404   404   404   404   404   200   404",
    },
    "payment-receipt": {
        "GET":    "login 200   404   404   404   404   404   404   404   404   200   404",
    },
    "money-whereabouts": {
        "GET":    "login 200   200   200   200   200   200   200   200   200   200   200",
    },
    # Payment history, PDF receipts, pay all (billing/history_views.py). The history lists only
    # the caller's own payments (LISTED below); the PDF is the receipt page's, in its scope.
    # Paying all of a household's open bills: only its resident; anyone else's → 404.
    "payment-history": {
        "GET":    "login 200   200   200   200   200   200   200   200   200   200   200",
    },
    "payment-receipt-pdf": {
        "GET":    "login 200   404   404   404   404   404   404   404   404   200   404",
    },
    "bill-pay-all": {
        "GET":    "login 405   405   405   405   405   405   405   405   405   405   405",
        "POST":   "login 302   404   404   404   404   404   404   404   404   404   404",
    },
    # The centre's desk (billing/desk_views.py): its centre admins take payments there; anyone
    # else signed in is refused (403), and another centre's household, receipt or centre is 404.
    # Closing the day with the cash the ledger shows for it (this admin's desk payment) closes it.
    # Anyone, signed in or not, checks a receipt's check code (billing/check_views.py): the
    # answer names an amount, an estate and months, never a person or a flat.
    "receipt-check": {
        "GET":    "200   200   200   200   200   200   200   200   200   200   200   200",
    },
    "desk": {
        "GET":    "login 403   403   403   403   403   403   403   403   403   200   404",
        "POST":   "login 403   403   403   403   403   403   403   403   403   302   404",
    },
    "desk-receipt": {
        "GET":    "login 403   403   403   403   403   403   403   403   403   200   404",
    },
    "desk-day-close": {
        "GET":    "login 403   403   403   403   403   403   403   403   403   200   200",
        "POST":   "login 403   403   403   403   403   403   403   403   403   302   404",
    },
    # The sandbox gateway's own pay page, standing for the gateway's site: whoever holds the
    # unguessable trade number, signed in or not, as on a real gateway.
    "sandbox-pay": {
        "GET":    "200   200   200   200   200   200   200   200   200   200   200   200",
        "POST":   "302   302   302   302   302   302   302   302   302   302   302   302",
    },
    # Meter readings entered by staff (billing/meter_views.py): the managing company's staff and
    # the centre's admins. Whoever sees the estate in another role is refused (403); an estate
    # out of sight is 404. The world's agreement has no metered item, so a POST re-renders the
    # form with its error (200), writing nothing.
    "meter-reading-estates": {
        "GET":    "login 403   403   403   200   200   403   403   403   403   200   200",
    },
    "meter-reading-entry": {
        "GET":    "login 403   403   404   200   404   403   404   403   404   200   404",
        "POST":   "login 403   403   404   200   404   403   404   403   404   200   404",
    },
    # --- Reports and repairs (repairs pages) -----------------------------------------------------
    #              anon  res   nbr   oest  stf   ostf  insp  oins  com   ocom  adm   oadm
    "repairs-mine": {
        "GET":    "login 200   200   200   200   200   200   200   200   200   200   200",
    },
    "repairs-new": {
        "GET":    "login 200   200   200   403   403   403   403   403   403   403   403",
        "POST":   "login 302   200   200   403   403   403   403   403   403   403   403",
    },
    "repairs-queue": {
        "GET":    "login 403   403   403   200   200   403   403   403   403   200   200",
    },
    "repairs-detail": {
        "GET":    "login 200   404   404   200   404   404   404   404   404   200   404",
    },
    # Accepting is the company's: a centre admin watches tickets (repairs/transitions.py).
    "repairs-act": {
        "GET":    "login 405   405   405   405   405   405   405   405   405   405   405",
        "POST":   "login 403   404   404   302   404   404   404   404   404   403   404",
    },
    "repairs-rate": {
        "GET":    "login 405   405   405   405   405   405   405   405   405   405   405",
        "POST":   "login 302   404   404   403   404   404   404   404   404   403   404",
    },
    "repairs-photo-add": {
        "GET":    "login 405   405   405   405   405   405   405   405   405   405   405",
        "POST":   "login 302   404   404   302   404   404   404   404   404   403   404",
    },
    # --- Ratings, spot checks, scorecards and dashboards (alliance pages) ------------------------
    #              anon  res   nbr   oest  stf   ostf  insp  oins  com   ocom  adm   oadm
    "alliance-rate": {
        "GET":    "login 200   200   200   200   200   200   200   200   200   200   200",
    },
    "alliance-rate-form": {
        "GET":    "login 200   404   404   404   404   404   404   404   404   404   404",
        "POST":   "login 302   404   404   404   404   404   404   404   404   404   404",
    },
    "alliance-ratings": {
        "GET":    "login 403   403   403   200   200   403   403   403   403   200   200",
    },
    "alliance-inspections": {
        "GET":    "login 403   403   403   403   403   200   200   403   403   403   403",
        "POST":   "login 403   403   403   403   403   302   200   403   403   403   403",
    },
    # Someone who sees one estate only is sent straight to its scorecard.
    "alliance-scorecards": {
        "GET":    "login 302   302   302   200   302   200   302   302   302   200   200",
    },
    "alliance-scorecard": {
        "GET":    "login 200   200   404   200   404   200   404   200   404   200   404",
    },
    # Appeals of "this" estate's scorecard (a draft in this world). Everyone who sees the estate
    # reads the appeals and decisions; only a manager of the company files (staff here is no
    # manager: 403) and only the alliance's mediator decides. The mediator is an inspector of a
    # mediator organisation (AllianceOrganisation.Kind.MEDIATOR); "insp" here inspects for a
    # hotline, so 403. The manager's and the mediator's own cells (302 when done, 400, 409) are
    # in alliance/tests/test_appeals.py.
    "alliance-appeal": {
        "GET":    "login 200   200   404   200   404   200   404   200   404   200   404",
        "POST":   "login 403   403   404   403   404   403   404   403   404   403   404",
    },
    "alliance-appeal-decide": {
        "GET":    "login 405   405   405   405   405   405   405   405   405   405   405",
        "POST":   "login 403   403   404   403   404   403   404   403   404   403   404",
    },
    "dashboard-centre": {
        "GET":    "login 403   403   403   403   403   403   403   403   403   200   200",
    },
    "dashboard-centre-export": {
        "GET":    "login 403   403   403   403   403   403   403   403   403   200   200",
    },
    "dashboard-bills-export": {
        "GET":    "login 403   403   403   403   403   403   403   403   403   200   200",
    },
    # Residents read their estate's figures too (see the module docstring).
    "dashboard-community": {
        "GET":    "login 200   200   404   200   404   403   404   200   404   200   404",
    },
    "dashboard-company": {
        "GET":    "login 403   403   403   200   200   403   403   403   403   403   403",
    },
    # The estate's public page and its lobby poster: everyone, signed in or not, by the token
    # printed on the poster (the figures are the estate's, never a household's).
    "public-estate": {
        "GET":    "200   200   200   200   200   200   200   200   200   200   200   200",
    },
    "public-estate-poster": {
        "GET":    "200   200   200   200   200   200   200   200   200   200   200   200",
    },
    # --- Points and rewards (points pages) -------------------------------------------------------
    #              anon  res   nbr   oest  stf   ostf  insp  oins  com   ocom  adm   oadm
    "points-home": {
        "GET":    "login 200   200   200   200   200   200   200   200   200   200   200",
    },
    "points-profile": {
        "GET":    "login 405   405   405   405   405   405   405   405   405   405   405",
        "POST":   "login 302   302   302   302   302   302   302   302   302   302   302",
    },
    "points-rewards": {
        "GET":    "login 200   200   200   200   200   200   200   200   200   200   200",
    },
    "points-redeem": {
        "GET":    "login 405   405   405   405   405   405   405   405   405   405   405",
        "POST":   "login 302   302!  302!  404   404   404   404   404   404   404   404",
    },
    "points-leaderboard": {
        "GET":    "login 200   200   200   200   200   200   200   200   200   200   200",
    },
    "points-company": {
        "GET":    "login 403   403   403   200   200   403   403   403   403   403   403",
    },
    "points-fulfil": {
        "GET":    "login 403   403   403   403   403   200   200   403   403   200   200",
        "POST":   "login 403   403   403   403   403   302   302!  403   403   302!  302!",
    },
    # --- Sign-in, sign-out, language -------------------------------------------------------------
    #              anon  res   nbr   oest  stf   ostf  insp  oins  com   ocom  adm   oadm
    # POST signs in as the neighbour, whoever was signed in before.
    "login": {
        "GET":    "200   302   302   302   302   302   302   302   302   302   302   302",
        "POST":   "302   302   302   302   302   302   302   302   302   302   302   302",
    },
    "logout": {
        "GET":    "405   405   405   405   405   405   405   405   405   405   405   405",
        "POST":   "login login login login login login login login login login login login",
    },
    "set_language": {
        "GET":    "302   302   302   302   302   302   302   302   302   302   302   302",
        "POST":   "302   302   302   302   302   302   302   302   302   302   302   302",
    },
    # --- API: token, me, community life ----------------------------------------------------------
    #              anon  res   nbr   oest  stf   ostf  insp  oins  com   ocom  adm   oadm
    "api-token": {
        "POST":   "200   200   200   200   200   200   200   200   200   200   200   200",
    },
    "api-me": {
        "GET":    "401   200   200   200   200   200   200   200   200   200   200   200",
    },
    # 400 for roles outside E1: the body names E1, which their serializer does not offer.
    "api-announcements": {
        "GET":    "401   200   200   200   200   200   200   200   200   200   200   200",
        "POST":   "401   403   403   400   201   400   403   400   201   400   201   400",
    },
    "api-announcement": {
        "GET":    "401   200   200   404   200   404   200   404   200   404   200   404",
    },
    "api-announcement-read": {
        "POST":   "401   204   204   404   204   404   204   404   204   404   204   404",
    },
    "api-activities": {
        "GET":    "401   200   200   200   200   200   200   200   200   200   200   200",
        "POST":   "401   403   403   400   201   400   403   400   403   400   201   400",
    },
    "api-activity": {
        "GET":    "401   200   200   404   200   404   200   404   200   404   200   404",
    },
    # DELETE without a sign-up: 404, like any missing object (community/api.py).
    "api-activity-signup": {
        "POST":   "401   409   201   404   403   404   403   404   403   404   403   404",
        "DELETE": "401   204   404   404   404   404   404   404   404   404   404   404",
    },
    # The organiser's check-in of the resident ({"user"}); residents use the door code.
    "api-activity-checkin": {
        "POST":   "401   403   403   404   201   404   403   404   403   404   201   404",
    },
    "api-activity-participants": {
        "GET":    "401   403   403   404   200   404   403   404   403   404   200   404",
    },
    "api-consultations": {
        "GET":    "401   200   200   200   200   200   200   200   200   200   200   200",
        "POST":   "401   403   403   400   403   400   403   400   201   400   201   400",
    },
    "api-consultation": {
        "GET":    "401   200   200   404   200   404   200   404   200   404   200   404",
    },
    "api-consultation-vote": {
        "POST":   "401   201   201   404   403   404   403   404   403   404   403   404",
    },
    # Who voted how: the estate's committee only, for a closed open-ballot vote.
    "api-consultation-ballots": {
        "GET":    "401   403   403   404   403   404   403   404   200   404   403   404",
    },
    # --- API: billing ----------------------------------------------------------------------------
    #              anon  res   nbr   oest  stf   ostf  insp  oins  com   ocom  adm   oadm
    "api-bill-list": {
        "GET":    "401   200   200   200   200   200   200   200   200   200   200   200",
    },
    # Prepaying is for the household's residents; staff and admins get 404 like any other
    # household's.
    "api-bill-prepay": {
        "POST":   "401   201   404   404   404   404   404   404   404   404   404   404",
    },
    "api-payment-create": {
        "POST":   "401   201   404   404   404   404   404   404   404   404   404   404",
    },
    # Unsigned: refused whoever sends it (the gateway's signature is its authentication).
    "payment-notify": {
        "POST":   "400   400   400   400   400   400   400   400   400   400   400   400",
    },
    "api-payment-detail": {
        "GET":    "401   200   404   404   404   404   404   404   404   404   200   404",
    },
    # Only the payer abandons a pending payment.
    "api-payment-cancel": {
        "POST":   "401   200   404   404   404   404   404   404   404   404   403   404",
    },
    "api-payment-refund": {
        "POST":   "401   403   404   404   404   404   404   404   404   404   201   404",
    },
    "api-payment-trail": {
        "GET":    "401   200   404   404   404   404   404   404   404   404   200   404",
    },
    "api-escrow": {
        "GET":    "401   403   403   404   403   404   403   404   200   404   200   404",
    },
    "api-payout-run": {
        "POST":   "401   403   403   404   403   404   403   404   403   404   201   404",
    },
    # The public fund: its balance and spendings are the estate's to see; the committee or the
    # centre proposes a spending (the owners' vote opens with it); the centre admin pays a passed
    # one (this one is still being voted on: 409).
    "api-public-fund": {
        "GET":    "401   200   200   404   200   404   200   404   200   404   200   404",
    },
    "api-public-fund-propose": {
        "POST":   "401   403   403   404   403   404   403   404   201   404   201   404",
    },
    "api-public-fund-post": {
        "POST":   "401   403   403   404   403   404   403   404   403   404   409   404",
    },
    "api-receipt-check": {
        "GET":    "200   200   200   200   200   200   200   200   200   200   200   200",
    },
    # --- API: repairs ----------------------------------------------------------------------------
    #              anon  res   nbr   oest  stf   ostf  insp  oins  com   ocom  adm   oadm
    "api-ticket-categories": {
        "GET":    "401   200   200   200   200   200   200   200   200   200   200   200",
    },
    "api-tickets": {
        "GET":    "401   200   200   200   200   200   200   200   200   200   200   200",
        "POST":   "401   201   400   400   403   403   403   403   403   403   403   403",
    },
    "api-ticket": {
        "GET":    "401   200   404   404   200   404   404   404   404   404   200   404",
    },
    "api-ticket-transition": {
        "POST":   "401   403   404   404   200   404   404   404   404   404   403   404",
    },
    "api-ticket-rating": {
        "POST":   "401   201   404   404   403   404   404   404   404   404   403   404",
    },
    "api-ticket-photos": {
        "POST":   "401   201   404   404   201   404   404   404   404   404   403   404",
    },
    "api-ticket-photo": {
        "GET":    "401   200   404   404   200   404   404   404   404   404   200   404",
    },
    # --- API: alliance ---------------------------------------------------------------------------
    #              anon  res   nbr   oest  stf   ostf  insp  oins  com   ocom  adm   oadm
    "api-service-ratings": {
        "GET":    "401   200   200   200   200   200   200   200   200   200   200   200",
        "POST":   "401   201   404   404   403   404   404   404   403   404   403   404",
    },
    # Ratings are read by the company's staff and centre admins (alliance RATING_READER_ROLES).
    "api-service-rating-summary": {
        "GET":    "401   403   403   404   200   404   403   404   403   404   200   404",
    },
    "api-inspections": {
        "GET":    "401   200   200   200   200   200   200   200   200   200   200   200",
        "POST":   "401   403   403   404   403   404   201   404   403   404   403   404",
    },
    "api-scorecards": {
        "GET":    "401   200   200   200   200   200   200   200   200   200   200   200",
    },
    # Residents read their estate's KPIs (alliance/kpi_api.py KPI_READER_ROLES; API.md lists
    # staff, admin and committee): the estate's figures, never a household's.
    "api-community-kpis": {
        "GET":    "401   200   200   404   200   404   403   404   200   404   200   404",
    },
    # --- API: points -----------------------------------------------------------------------------
    #              anon  res   nbr   oest  stf   ostf  insp  oins  com   ocom  adm   oadm
    "api-points": {
        "GET":    "401   200   200   200   200   200   200   200   200   200   200   200",
    },
    "api-points-profile": {
        "GET":    "401   200   200   200   200   200   200   200   200   200   200   200",
        "PATCH":  "401   200   200   200   200   200   200   200   200   200   200   200",
    },
    "api-points-leaderboard": {
        "GET":    "401   200   200   404   200   404   200   404   200   404   200   404",
    },
    "api-reward-list": {
        "GET":    "401   200   200   200   200   200   200   200   200   200   200   200",
    },
    # The reward is C1's: any resident of C1 sees it; without the points it is 409.
    "api-reward-redeem": {
        "POST":   "401   201   409   409   404   404   404   404   404   404   404   404",
    },
    "api-redemption-list": {
        "GET":    "401   200   200   200   200   200   200   200   200   200   200   200",
    },
    # Only the reward's provider (the inspector's organisation O1) accepts its code.
    "api-redemption-fulfil": {
        "POST":   "401   403   403   403   403   403   200   404   403   403   404   404",
    },
    # Cancelling (and refunding the points) is the centre admin's.
    "api-redemption-cancel": {
        "POST":   "401   403   404   404   404   404   404   404   404   404   200   404",
    },
    # --- Notification settings (community/notifications.py) --------------------------------------
    #              anon  res   nbr   oest  stf   ostf  insp  oins  com   ocom  adm   oadm
    # Everyone's own switches: nothing of anyone else's is named, so every signed-in role may.
    "notification-settings": {
        "GET":    "login 200   200   200   200   200   200   200   200   200   200   200",
        "POST":   "login 302   302   302   302   302   302   302   302   302   302   302",
    },
    "api-notification-settings": {
        "GET":    "401   200   200   200   200   200   200   200   200   200   200   200",
        "PATCH":  "401   200   200   200   200   200   200   200   200   200   200   200",
    },
    # --- API docs (public: the contract for third-party clients) ---------------------------------
    #              anon  res   nbr   oest  stf   ostf  insp  oins  com   ocom  adm   oadm
    "api-docs": {
        "GET":    "200   200   200   200   200   200   200   200   200   200   200   200",
    },
}
# fmt: on


# Django admin, spot checks (the rest of admin is EXCLUDED above): a centre admin's changelists
# and change pages are scoped to their centre; everyone else is sent to the admin's sign-in.
# fmt: off
ADMIN_ROWS: dict[str, dict[str, str]] = {
    #              anon  res   nbr   oest  stf   ostf  insp  oins  com   ocom  adm   oadm
    "admin:index": {
        "GET":    "login login login login login login login login login login 200   200",
    },
    "admin:community_household_changelist": {
        "GET":    "login login login login login login login login login login 200   200",
    },
    "admin:community_household_change": {
        "GET":    "login login login login login login login login login login 200   302",
    },
    "admin:billing_payment_change": {
        "GET":    "login login login login login login login login login login 200   302",
    },
}

# Lists: is "this" object among the rows each role gets (x) or not (.)? A 200 alone would not
# show a list leaking another household's rows. For the API, the object's id among the results;
# for a page, a text only its row shows (conftest.py: the ticket's title, the link to the
# payment, the unpaid bill's checkbox, the neighbour's rating comment). "neighbour_rating" and
# "neighbour_comment" are the neighbour's household's (H2): the resident of H1 must not see them.
LISTED: dict[str, tuple[str, str]] = {
    #    anon  res   nbr   oest  stf   ostf  insp  oins  com   ocom  adm   oadm
    "api-announcements": (
        "announcement",
        ".     x     x     .     x     .     x     .     x     .     x     .",
    ),
    "api-activities": (
        "activity",
        ".     x     x     .     x     .     x     .     x     .     x     .",
    ),
    "api-consultations": (
        "consultation",
        ".     x     x     .     x     .     x     .     x     .     x     .",
    ),
    "api-scorecards": (
        "scorecard",
        ".     x     x     .     x     .     x     .     x     .     x     .",
    ),
    "api-inspections": (
        "inspection",
        ".     .     .     .     x     .     x     .     x     .     x     .",
    ),
    "api-bill-list": (
        "paid_bill",
        ".     x     .     .     x     .     .     .     .     .     x     .",
    ),
    "api-tickets": (
        "ticket",
        ".     x     .     .     x     .     .     .     .     .     x     .",
    ),
    "api-service-ratings": (
        "neighbour_rating",
        ".     .     x     .     x     .     .     .     .     .     x     .",
    ),
    "bill-list": (
        "unpaid_bill_box",
        ".     x     .     .     .     .     .     .     .     .     .     .",
    ),
    "desk": (
        "unpaid_bill_box",
        ".     .     .     .     .     .     .     .     .     .     x     .",
    ),
    "money-whereabouts": (
        "payment_link",
        ".     x     .     .     .     .     .     .     .     .     .     .",
    ),
    "payment-history": (
        "payment_link",
        ".     x     .     .     .     .     .     .     .     .     .     .",
    ),
    "repairs-mine": (
        "ticket_title",
        ".     x     .     .     .     .     .     .     .     .     .     .",
    ),
    "repairs-queue": (
        "ticket_title",
        ".     .     .     .     x     .     .     .     .     .     x     .",
    ),
    "alliance-ratings": (
        "neighbour_comment",
        ".     .     .     .     x     .     .     .     .     .     x     .",
    ),
    "api-redemption-list": (
        "redemption",
        ".     x     .     .     .     .     .     .     .     .     .     .",
    ),
}
# fmt: on


def parse_listed(text: str) -> list[str]:
    tokens = text.split()
    if len(tokens) != ROLE_COUNT or set(tokens) - {"x", "."}:
        raise ValueError(f"expected {ROLE_COUNT} of x or .: {text!r}")
    return tokens


def parse_row(row: dict[str, str]) -> dict[str, list[str]]:
    """{"GET": "200 404 ..."} -> {"GET": ["200", "404", ...]}, checking the shorthand."""
    parsed = {}
    for method, text in row.items():
        tokens = text.split()
        if len(tokens) != ROLE_COUNT:
            raise ValueError(f"{method}: {len(tokens)} statuses, expected {ROLE_COUNT}: {text!r}")
        unknown = set(tokens) - TOKENS
        if unknown:
            raise ValueError(f"{method}: unknown statuses {sorted(unknown)} in {text!r}")
        parsed[method] = tokens
    return parsed
