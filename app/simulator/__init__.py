"""A DCImanager 6 simulator for tests, demos, benchmarks and chaos runs.

It serves the URLs, headers and JSON shapes of the vendor's "Examples of API use"
page (``create_simulator_app`` in :mod:`app.simulator.app`), keeps a stateful
model of a small data centre, injects faults on demand, and exposes ``/_sim/*``
(no auth) to inspect and steer it.

Assumptions, not confirmed by the vendor
----------------------------------------
Where the vendor's page and public code are silent, the simulator behaves as
follows. Clients written against it rely on these; change them only together.

Auth
  * ``POST /api/auth/v4/public/token`` answers 200 ``{"id": "<session id>",
    "token": "<24 hex digits>"}``; bad credentials answer 401, code 3002.
  * Every other ``/api`` call needs cookie ``ses6=<token>`` (or header
    ``ISP-Session: <token>``), header ``x-xsrf-token`` equal to the token, and
    ``isp-box-instance: true``; otherwise 401, code 3001.
  * ``DELETE /api/auth/v4/token/<token>`` needs a valid session and answers 200 ``{}``.
  * Any user with a non-empty password may log in; roles grant no permissions.

Errors
  * ``{"error": {"code", "msg", "value": {}}}``. Codes 1106 and 3001 come from
    public code; the rest are the simulator's own (see :class:`ErrorKind`): 400
    1000 bad body, 400 1001 bad ``where``/``orderby``/``limit``, 404 1106 no such
    route, 405 1107, 404 2001-2006 unknown server/user/IP/network/pool/OS
    template, 409 2101 owner already set, 2102 no owner to release, 2103 a long
    operation is already running, 2104 e-mail taken, 2105 address unavailable,
    2106 no free address, 2107 IP not on that server, 503 5003 unavailable.
  * Request bodies are read as JSON whatever the ``Content-Type`` (the vendor's
    curl examples send JSON labelled as form data).

Lists
  * ``{"list": [...], "size": N}`` everywhere, ``server/configuration`` included;
    ``size`` counts matches before ``limit``.
  * ``where``: ``EQ``/``NE`` compare as text (``server EQ 5`` matches ``"5"``;
    ``true``/``false`` match booleans), comparisons with null are never true,
    ``CP`` is a case-insensitive SQL LIKE (``%`` and ``_``). An unknown field is
    400 1001.

Writes and operations
  * A write on a server answers ``{"id": <server id>, "task": <task id>}``; owner
    set/release and user creation answer ``{"id"}`` only; IP allocation answers
    ``{"id": <new IP id>, "task"}``; IP removal ``{"id": <IP id>, "task"}``.
  * ``server.operation`` is the last long operation (``os_install``,
    ``clear_hdd``, ``diag``) or null: ``{"id", "type", "status":
    running|ok|fail|canceled, "status_info", "progress_info": {"progress"}}``.
    The task id a long write returns is ``operation.id``.
  * ``state`` is ``operation`` while one runs, ``error`` if the last one failed,
    else ``ok``. ``power_status`` is ``on``/``off``; servers start off.
  * A long operation takes its configured simulated seconds; starting one while
    another runs is 409 2103. Power and port calls act at once, at any time, and
    still answer a task id. Suspend only takes ports down; power is untouched.
  * OS install, on success: sets ``os_template``, powers on. ``clear_hdd`` (or a
    diag with ``clear_hdd``) with a mode other than ``none``: on success, clears
    ``os_template``. Diag, on success: ``is_new`` becomes false. A failure changes
    nothing but the status. The diag's ``os_template_id``, ``setup_ipmi`` and
    ``ipmi_pool`` and the install's ``hdd_raid`` and keys are accepted and ignored;
    the install password is never kept, logged or returned.
  * A server is free (``free_server_count``) with no owner and state ``ok``:
    nothing running and the last operation, if any, ``ok`` or ``canceled``.
    Setting an owner on an owned server, even the same owner, is 409 2101;
    releasing an unowned one 409 2102.
  * Users: ``roles`` is ``"[@<role>]"`` (``role`` defaults to ``user``),
    ``vlans_per_user`` 5, e-mails unique ignoring case.

Addresses
  * IPv4 only. The next free address is the lowest host address that is not the
    gateway (default: the first host); network and broadcast addresses are never
    given. ``ip_name`` asks for one address; ``ip_net``/``ip_pool`` narrow the
    choice; 0 or "" mean "any". ``set_as_main_ipv4`` puts the address first in
    the server's ``ip`` list.
  * An IP is ``allocating`` for the configured time, then ``active``, or
    ``failed`` under fault injection: a failed IP stays listed (until removed)
    but its address is back in the pool at once. Removal is immediate.
  * ``ipnet``: ``family`` 2 (AF_INET), ``mask`` the prefix length, ``size`` all
    addresses, ``total_ip`` assignable ones (size - network - broadcast -
    gateway), ``using_ip`` allocating + active. ``ippool`` sums its networks;
    ``is_public`` is ``"true"``, IPv6 counters ``"0"``.

Faults (``POST /_sim/faults``)
  * A 503 is decided before auth and before any effect. A dropped answer applies
    only to successful ``POST``/``DELETE`` calls outside ``/api/auth``: the write
    is done, the status line and headers are sent, then the connection is cut
    (httpx raises ``RemoteProtocolError``; in process, through
    ``httpx.ASGITransport``, the app raises a subclass of it).
  * Token expiry (``token_ttl_seconds``) is judged on the simulator clock with
    the TTL in force at the time of the call.
"""
