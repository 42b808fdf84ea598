// What the desk knows, shared by its views, and the one way to ask for a re-render.

const ROLES = ["viewer", "duty", "engineer", "manager", "admin"];

export const state = {
  me: null,  // {name, role, buildings}
  site: null,  // {id, name, timezone, buildings, systems}
  alarms: new Map(),  // open alarms by id
  closedAlarms: null,  // the closed list, once asked for
  alarmView: "open",  // open | shelved | closed
  alarmTotal: 0,  // open alarms on the server (the list holds at most 500)
  shelving: null,  // alarm id whose shelve form is open
  flood: { active: false },
  plans: new Map(),  // open plan instances by id
  tasks: new Map(),
  expandedTasks: new Set(),  // task cards opened to show checklist and notes
  onlyOverdue: false,
  newTask: false,  // the complaint form is open
  reassigning: null,  // task id whose assign form is open
  cancelling: null,  // task id asking "cancel it?"
  devices: [],
  devicesAt: 0,  // ms when the device list was read (ages count on from there)
  deviceBuilding: "",  // the device board's filters ("" = all)
  deviceSystem: "",
  oosForm: null,  // device id whose out-of-service form is open
  detail: null,  // {id, alarm, plan, error}
  confirmClosePlan: null,  // plan id asking "close it?"
  tab: "alarms",
  taskColumn: "open",  // the one column a phone shows
  link: { state: "offline", heardAt: 0 },
  errors: new Map(),  // inline error of an action, by the key of the thing acted on
  busy: new Set(),  // keys of actions under way
};

/** Whether the logged-in user holds `role` or a higher one. */
export function can(role) {
  return state.me !== null && ROLES.indexOf(state.me.role) >= ROLES.indexOf(role);
}

/** An alarm, task or plan from an event (which carries only the device id) with its device's name,
 * building and system, as the list routes give them. */
export function placed(record) {
  if (record.device_name !== undefined || !record.device) return record;
  const device = state.devices.find((d) => d.id === record.device);
  if (!device) return record;
  return { ...record, device_name: device.name, building: device.location.building, system: device.system };
}

let renderer = () => {};
let pending = null;

export function onChange(render) {
  renderer = render;
}

/** Ask for a re-render; many events in a burst (an alarm flood) make one. */
export function changed() {
  if (pending !== null) return;
  pending = setTimeout(() => {
    pending = null;
    renderer();
  }, 30);
}

/** Run an action keyed `key`: its error, if any, is kept to be shown next to its button. */
export async function act(key, action) {
  if (state.busy.has(key)) return undefined;
  state.busy.add(key);
  state.errors.delete(key);
  changed();
  try {
    return await action();
  } catch (err) {
    state.errors.set(key, err.message || String(err));
    return undefined;
  } finally {
    state.busy.delete(key);
    changed();
  }
}
