// placeholder, replaced by the database helper
export default async function setup(): Promise<void> {}
