// Building bits of page without innerHTML: an element with properties and
// children (text children are inserted as text, never parsed).

/**
 * @param {Document} doc
 * @param {string} tag
 * @param {object} [props] assigned to the element
 * @param {...(Node | string)} children
 */
export function element(doc, tag, props = {}, ...children) {
  const node = Object.assign(doc.createElement(tag), props);
  node.append(...children);
  return node;
}
