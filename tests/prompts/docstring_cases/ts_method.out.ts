export class Users {
  private byId = new Map<string, User>();

  /**
   * Look up a user by id.
   *
   * @param {string} id - The user's id.
   * @returns {User | undefined} The user, or undefined.
   */
  get(id: string): User | undefined {
    return this.byId.get(id);
  }
}
