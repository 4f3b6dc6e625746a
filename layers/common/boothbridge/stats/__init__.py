"""Booth statistics: the validated query (range, grouping, paging; pure) and the SQL-backed figures."""
