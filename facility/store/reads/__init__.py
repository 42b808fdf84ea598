"""The read side of the ops store, for reports: every query a report makes, returning typed records.

The reports used to query the ORM tables themselves, which made the schema a public interface; they
are now layout over these records, so a table may change while the records stay. Every query runs
in one `View` (one session, so a report reads one state of the store) and within its device limit:
records of other devices are left out, site-wide ones (a task without a device) always stay in.

- `view`: the session and the device limit;
- `alarms`: activations, emergencies, acknowledge times, chattering, events, open alarms, outages;
- `tasks`: task lines, counts, repair times, deadlines kept, task events;
- `plans`: plan steps done, plans opened, open plans.
"""
