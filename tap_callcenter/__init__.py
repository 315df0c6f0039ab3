"""tap-callcenter: a Singer tap for Conpeek, Thulium and Eltex ECSS-10."""
