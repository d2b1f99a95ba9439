//! Paging by cursor, for every list that pages (catalog changes, the audit log) or is capped
//! (alerts): a page holds 1 to 1000 rows, 100 when the caller names no size, and is read with one
//! row more than its size, which, when it comes, proves a next page; the cursor to it is the last
//! kept row's id.

use crate::StoreError;

/// The most rows a page may hold.
pub const MAX_PAGE: u32 = 1000;
/// The rows of a page whose size was left out.
pub const DEFAULT_PAGE: u32 = 100;

/// The page size a caller asked for (`limit`), or [`DEFAULT_PAGE`]; outside 1 to [`MAX_PAGE`] it
/// is refused naming `limit`.
pub fn page_size(limit: Option<u32>) -> Result<u32, StoreError> {
    match limit {
        None => Ok(DEFAULT_PAGE),
        Some(n) if (1..=MAX_PAGE).contains(&n) => Ok(n),
        Some(n) => Err(StoreError::Invalid { field: "limit", message: format!("{n} is not between 1 and {MAX_PAGE}") }),
    }
}

/// How many rows to read for a page of `size`: one more, to learn whether another page follows.
pub(crate) fn rows_to_read(size: u32) -> i64 {
    i64::from(size) + 1
}

/// Cuts rows read with [`rows_to_read`] to a page of `size`, and the cursor of the next page
/// (the last kept row's, by `cursor`) when more were read.
pub(crate) fn cut<T, C>(mut rows: Vec<T>, size: u32, cursor: impl Fn(&T) -> C) -> (Vec<T>, Option<C>) {
    let size = usize::try_from(size).unwrap_or(usize::MAX);
    if rows.len() > size {
        rows.truncate(size);
        let next = rows.last().map(cursor);
        (rows, next)
    } else {
        (rows, None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_default_to_100_and_outside_1_to_1000_name_the_limit() {
        assert_eq!(page_size(None).expect("default"), 100);
        assert_eq!(page_size(Some(1)).expect("one"), 1);
        assert_eq!(page_size(Some(1000)).expect("most"), 1000);
        for n in [0, 1001, u32::MAX] {
            let e = page_size(Some(n)).expect_err("refused");
            assert!(
                matches!(&e, StoreError::Invalid { field: "limit", message } if message.contains(&n.to_string())),
                "{e:?}"
            );
        }
    }

    #[test]
    fn one_row_more_than_the_size_makes_a_next_page_at_the_last_kept_row() {
        assert_eq!(rows_to_read(3), 4);
        assert_eq!(cut(vec![9, 8, 7, 6], 3, |r| *r), (vec![9, 8, 7], Some(7)));
        assert_eq!(cut(vec![9, 8, 7], 3, |r| *r), (vec![9, 8, 7], None));
        assert_eq!(cut(Vec::<i32>::new(), 3, |r| *r), (vec![], None));
    }
}
