'use strict';
{
    // Django's autocomplete widget (select2) adds a search box without a label (axe: "label", critical): name each
    // after its field's label. select2 puts its container right after the <select> it replaces.
    const labelSearchFields = () => {
        for (const field of document.querySelectorAll('.select2-search__field:not([aria-label])')) {
            const container = field.closest('.select2-container');
            const select = container && container.previousElementSibling;
            const label = select && select.id && document.querySelector(`label[for="${select.id}"]`);
            const name = label ? label.textContent.replace(/:\s*$/, '').trim() : '';
            field.setAttribute('aria-label', name ? `Search ${name}` : 'Search');
        }
    };
    document.addEventListener('DOMContentLoaded', () => {
        labelSearchFields();
        new MutationObserver(labelSearchFields).observe(document.body, {childList: true, subtree: true});
    });
}
