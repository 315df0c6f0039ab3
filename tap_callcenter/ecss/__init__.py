"""Eltex ECSS-10 call-center module: ``operator_call_history`` over HTTP or websocket."""

from tap_callcenter.ecss.stream import OperatorCallHistoryStream

__all__ = ["OperatorCallHistoryStream"]
