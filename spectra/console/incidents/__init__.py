"""The console's incidents: the list (open, acknowledged, resolved; filters), one incident with its whole
timeline (who was paged, by which channel, delivery status and attempts, escalations, who acknowledged
and how, notes), the monitor and its state, and the actions a person takes: acknowledge, resolve, add a
note, escalate now, reassign to a contact.

The actions are the state machine of `spectra.alerting.incidents`, the same functions the ack links, SMS
and voice call; paging stays with the alerter. Pages under `/console/incidents` (`views.py`), their JSON
twins under `/api/v1/incidents` (`api.py`), and `spectra incidents` is a client of those (`client.py`).
"""
