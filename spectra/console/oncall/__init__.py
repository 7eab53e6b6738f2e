"""The console's on-call area: for each schedule a viewer may see, who is on call now and the next 14 days
as a timeline, the viewer's own shifts, overrides taken here ("I take it until 18:00", kept in the store
with their expiry, cancelled by whoever took them or an organization admin, every change audited), and a
signed iCalendar feed of one's shifts. The JSON twins live under `/api/v1/oncall`.

Overrides kept in the store join each Schedule's own `spec.overrides` in the one resolution of
`spectra.oncall`, so the alerter pages whom they name and the operator's status shows them.
"""
