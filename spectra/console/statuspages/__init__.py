"""The console's status pages (`/console/status-pages`) and their JSON twins (`/api/v1/status-pages`):
the organization's pages with their components' states; incidents posted by hand (affected components and
their impact, status, a markdown message with a preview, subscribers told or not), their updates,
resolving them and their post-mortems; ad-hoc maintenance of components from now until a time, which holds
paging as a MaintenanceWindow does and can be ended early. The public page shows each change at once."""
