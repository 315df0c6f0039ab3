"""The Singer SDK's private names this tap relies on: one list, each with why.

The SDK is pinned to a compatible range (``singer-sdk~=0.54.9``), and a private name can
change in any release of it. ``tests/test_packaging.py`` finds every private SDK name the
code imports, overrides or reads and checks that it is listed here (so a new one cannot
slip in unexplained) and that each still exists in the installed SDK (so CI's job on the
newest SDK the range allows names what a release broke). Nothing imports this module:
it is the list and its reasons.
"""

from __future__ import annotations

#: ``owner.name`` -> why the tap needs it. ``owner`` is the SDK module for an import,
#: or the first SDK class in the tap class's MRO that defines the name.
PRIVATE_SDK_NAMES: dict[str, str] = {
    # -- imports from private modules (tap.py)
    "singer_sdk.configuration._dict_config.parse_environment_config": (
        "--config ENV: reads TAP_CALLCENTER_* variables with the SDK's own parsing, once "
        "for top-level settings and once per provider block (TAP_CALLCENTER_THULIUM_PASSWORD), "
        "the names Meltano uses for nested settings; the SDK itself reads top-level ones only."
    ),
    "singer_sdk.helpers._classproperty.classproperty": (
        "to override PluginBase._env_var_config, which the SDK declares as a classproperty."
    ),
    # -- the tap (tap.py)
    "PluginBase._config": (
        "numbers given as strings (environment variables, Meltano's string-kind settings) "
        "are turned into numbers in place before the config is validated."
    ),
    "PluginBase._env_var_config": "--config ENV with nested provider settings (see above).",
    "PluginBase._env_var_prefix": "the TAP_CALLCENTER_ prefix, for the provider variables.",
    "PluginBase._validate_config": (
        "strict validation also for --discover (the SDK skips it there): unknown keys with a "
        "'did you mean', date and time-zone checks, batch_config refused, secrets redacted."
    ),
    "Tap._handle_termination": (
        "SIGTERM/SIGINT exit 143/130 within seconds without half a message on stdout; the "
        "SDK's handler exits 0, so schedulers would record an interrupted run as a success."
    ),
    # -- the streams (bookmarks.py, engine.py, fastpath.py, client.py)
    "Stream._tap": "the tap's parsed run settings and the catalog's FULL_TABLE streams.",
    "Stream._finalize_state": (
        "the engine finalizes the bookmark after each completed window (not per record)."
    ),
    "Stream._write_state_message": "a STATE message right after each completed window.",
    "Stream._increment_stream_state": (
        "overridden to do nothing: the engine owns the bookmark; the SDK's per-record "
        "progress markers are not resumable."
    ),
    "Stream._generate_record_messages": (
        "overridden to skip the SDK's per-record pass over deselected properties when none "
        "is deselected (a quarter of the CPU time per record); otherwise the SDK's path."
    ),
    "Stream._stream_version": "the RECORD version the SDK would write, for that fast path.",
    "Stream._write_record_message": (
        "overridden: a record that no stream map or deselection changes goes straight to "
        "the buffered writer's write_record (no message object per record); otherwise the "
        "SDK's path."
    ),
    "Stream._process_record": (
        "overridden to do nothing unless the stream has child streams or a partition "
        "context (it has neither: a generator and two calls per record saved)."
    ),
    "_HTTPStream._request": (
        "replaced: each request is sent bounded in time, bytes and origin (bounded.py); a "
        "429 with Retry-After pauses every request of the stream, and the number of "
        "requests in flight is bounded by max_concurrency."
    ),
    "_HTTPStream._write_request_duration_log": (
        "the SDK's http_request_duration metric, written as its own _request does."
    ),
    "_HTTPStream._LOG_REQUEST_METRIC_URLS": "whether that metric names the URL, as the SDK.",
}
